from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from tests.conftest import FIXTURES, shared_file
from tickwise.cli import app
from tickwise.exceptions import DataError, InputError, TickwiseError


def test_detect_value_csv_one_row_per_input_and_flags_spike(tmp_path):
    rng = np.random.default_rng(0)
    v = 50 + rng.normal(0, 2, 600)
    v[500] = 95.0
    src = tmp_path / "cpu.csv"
    pl.DataFrame({"timestamp": [f"2024-01-01T{i // 60:02d}:{i % 60:02d}:00" for i in range(600)], "cpu": v}).write_csv(src)
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["detect", "--data", str(src), "--detector", "zscore", "--out", str(out)])
    assert result.exit_code == 0, result.output
    scores = pl.read_csv(out)
    assert scores.columns == ["timestamp", "score", "threshold", "is_anomaly", "explanation"]
    assert scores.height == 600
    assert scores["is_anomaly"][500] and "cpu" in scores["explanation"][500]


def test_detect_ohlcv_file_autoencoder_writes_symbol_rows(tmp_path):
    out = tmp_path / "s.csv"
    src = shared_file("goog_daily_backtesting.csv")
    result = CliRunner().invoke(app, ["detect", "--data", str(src), "--detector", "autoencoder", "--out", str(out)])
    assert result.exit_code == 0, result.output
    scores = pl.read_csv(out)
    assert scores.height == 2148 and scores["symbol"].unique().to_list() == ["GOOG"]
    assert scores["score"].drop_nulls().len() > 1000


def test_detect_unknown_detector_is_input_error(tmp_path):
    result = CliRunner().invoke(app, ["detect", "--data", "x.csv", "--detector", "magic", "--out", str(tmp_path / "o.csv")])
    assert isinstance(result.exception, InputError)
    assert "--detector must be one of" in str(result.exception)


def test_evaluate_anomaly_writes_table_and_json(tmp_path):
    out = tmp_path / "eval.json"
    src = shared_file("goog_daily_backtesting.csv")
    result = CliRunner().invoke(app, ["evaluate-anomaly", "--data", str(src), "--detectors", "zscore",
                                      "--kinds", "frozen_price,volume_burst", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    kinds = {r["kind"] for r in report["rows"]}
    assert kinds == {"frozen_price", "volume_burst", "all"}
    frozen = next(r for r in report["rows"] if r["kind"] == "frozen_price")
    assert frozen["events"] >= 10 and frozen["recall"] >= 0.5
    assert "precision" in result.output


def test_evaluate_anomaly_pools_the_counts_of_several_seeds(tmp_path):
    src = shared_file("goog_daily_backtesting.csv")
    rows = {}
    for seed in ("3", "4", "3,4"):
        out = tmp_path / f"eval{seed}.json"
        result = CliRunner().invoke(app, ["evaluate-anomaly", "--data", str(src), "--detectors", "zscore",
                                          "--kinds", "volume_burst", "--seed", seed, "--json", str(out)])
        assert result.exit_code == 0, result.output
        rows[seed] = json.loads(out.read_text())["rows"][0]
    assert "injection seeds 3,4" in result.output
    one, other, pooled = rows["3"], rows["4"], rows["3,4"]
    for key in ("events", "detected", "false_alarms"):
        assert pooled[key] == one[key] + other[key]
    assert one["events"] >= 10
    # other injections, so other counts: the pooled run did not score seed 3 twice
    assert (one["detected"], one["false_alarms"]) != (other["detected"], other["false_alarms"])
    # the spread under the pooled figure: each seed's own F1, as its run alone measured it
    assert pooled["f1_by_seed"] == {"3": one["f1"], "4": other["f1"]}
    assert f"by injection seed: 3 {one['f1']:.3f}, 4 {other['f1']:.3f}" in result.output
    assert "f1_by_seed" not in one


def test_evaluate_anomaly_reports_each_series_f1(tmp_path):
    goog, spx = shared_file("goog_daily_backtesting.csv"), shared_file("sp500_daily_arch.csv")
    rows = {}
    for name, files, seed in (("both", [goog, spx], "3"), ("spx", [spx], "4")):
        out = tmp_path / f"{name}.json"
        args = ["evaluate-anomaly", "--detectors", "zscore", "--kinds", "volume_burst", "--seed", seed, "--json", str(out)]
        for f in files:
            args += ["--data", str(f)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        rows[name] = json.loads(out.read_text())["rows"][0]
    by_series = rows["both"]["f1_by_series"]
    assert list(by_series) == ["GOOG", "SP500"]
    # the second series of a run is injected with seed + 1: alone with seed 4, the same figure
    assert by_series["SP500"] == rows["spx"]["f1"]
    assert "f1_by_series" not in rows["spx"]


@pytest.mark.parametrize("seed", ["x", ",", "7;8", "7,7"])
def test_evaluate_anomaly_bad_seed_is_input_error(seed):
    result = CliRunner().invoke(app, ["evaluate-anomaly", "--data", "x.csv", "--seed", seed])
    assert isinstance(result.exception, InputError)
    assert "--seed must" in str(result.exception)


def test_evaluate_anomaly_classifier_trained_without_the_scored_stock(tmp_path):
    out = tmp_path / "eval.json"
    src = shared_file("goog_daily_backtesting.csv")
    result = CliRunner().invoke(app, ["evaluate-anomaly", "--data", str(src), "--detectors", "classifier",
                                      "--kinds", "price_spike", "--classifier-exclude", "goog", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["settings"]["options"]["classifier"]["training"]["exclude"] == ["GOOG"]
    row = report["rows"][0]
    assert row["detector"] == "classifier" and row["events"] >= 10 and row["recall"] >= 0.7


def test_detect_classifier_on_value_series_is_clear_error(tmp_path):
    src = tmp_path / "cpu.csv"
    src.write_text("timestamp,cpu\n" + "".join(f"2026-01-01T00:{i // 60:02d}:{i % 60:02d},{i % 7}\n" for i in range(300)))
    result = CliRunner().invoke(app, ["detect", "--data", str(src), "--column", "cpu", "--detector", "classifier",
                                      "--out", str(tmp_path / "o.csv")])
    assert isinstance(result.exception, InputError)
    assert "needs OHLCV bars" in str(result.exception)
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(("exclude", "message"), [("TSLA", "was TSLA"), ("aapl,goog,ibm,msft", "at least one")])
def test_evaluate_anomaly_classifier_exclude_must_name_training_symbols(tmp_path, exclude, message):
    src = shared_file("goog_daily_backtesting.csv")
    result = CliRunner().invoke(app, ["evaluate-anomaly", "--data", str(src), "--detectors", "classifier",
                                      "--classifier-exclude", exclude, "--json", str(tmp_path / "e.json")])
    assert isinstance(result.exception, InputError), result.output
    assert message in str(result.exception) and "AAPL, GOOG, IBM, MSFT" in str(result.exception)
    assert not (tmp_path / "e.json").exists()


def test_evaluate_anomaly_lists_every_false_alarm_with_its_explanation(tmp_path):
    src = shared_file("goog_daily_backtesting.csv")
    out, alarms = tmp_path / "eval.json", tmp_path / "fa.csv"
    result = CliRunner().invoke(app, ["evaluate-anomaly", "--data", str(src), "--detectors", "zscore,divergence",
                                      "--quick", "--seed", "7,8", "--json", str(out), "--false-alarms", str(alarms)])
    assert result.exit_code == 0, result.output
    counted = {r["detector"]: r["false_alarms"] for r in json.loads(out.read_text())["rows"]}
    listed = pl.read_csv(alarms, try_parse_dates=True)
    assert counted["zscore"] > 0
    assert listed.group_by("detector").len().sort("detector").rows() == sorted(counted.items())
    assert listed["explanation"].str.len_chars().min() > 0 and set(listed["seed"]) <= {7, 8}
    assert (listed["score"] > listed["threshold"]).all() and listed["ts"].null_count() == 0
    assert f"wrote {listed.height} false alarms" in result.output


def test_detect_cross_section_off_scores_each_symbol_of_a_file_alone(tmp_path):
    """GOOG and MSFT in one file: with the market on (default) GOOG's classifier scores read MSFT's
    bars of the same dates; with it off they are those of GOOG's file alone."""
    from tickwise.sources.files import read_bars

    goog = read_bars(shared_file("goog_daily_backtesting.csv")).sort("ts").head(500)
    msft = read_bars(shared_file("msft_daily_pmdarima.csv")).filter(pl.col("ts").is_in(goog["ts"].implode()))
    cols = ["symbol", "ts", "open", "high", "low", "close", "volume"]
    pl.concat([goog.select(cols), msft.select(cols)]).write_csv(tmp_path / "two.csv")
    goog.select(cols).write_csv(tmp_path / "goog.csv")

    def scores(name: str, *extra: str) -> pl.DataFrame:
        out = tmp_path / f"{name}-{len(extra)}.csv"
        result = CliRunner().invoke(app, ["detect", "--data", str(tmp_path / name), "--detector", "classifier",
                                          "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
        return pl.read_csv(out).filter(pl.col("symbol") == "GOOG")

    alone, off, on = scores("goog.csv"), scores("two.csv", "--cross-section", "off"), scores("two.csv")
    assert alone.height == off.height == on.height == 500
    np.testing.assert_array_equal(off["score"].to_numpy(), alone["score"].to_numpy())
    assert not np.allclose(on["score"].to_numpy(), alone["score"].to_numpy(), equal_nan=True)


def test_prepare_fits_the_shipped_classifier_once_then_says_it_is_stored():
    from tickwise.anomaly.learned import Training, to_fit
    from tickwise.anomaly.modelcache import cache_dir

    first = CliRunner().invoke(app, ["prepare"])  # fits what this test session has not stored yet
    assert first.exit_code == 0, first.output
    assert to_fit(Training()) == 0 and to_fit(Training(market=True)) == 0
    assert first.output.strip().splitlines()[-1].startswith(f"classifier: 8 models ready in {cache_dir()} (")
    again = CliRunner().invoke(app, ["prepare"])
    assert again.exit_code == 0
    assert again.output.strip() == f"classifier: 8 models ready in {cache_dir()} (all stored already)"


@pytest.mark.parametrize(("args", "env", "message"), [
    (["prepare", "--market", "maybe"], {}, "--market must be on or off, was 'maybe'"),
    (["prepare"], {"TICKWISE_MODEL_CACHE": "off"}, "TICKWISE_MODEL_CACHE=off: a fitted model would not be kept"),
])
def test_prepare_bad_input_is_one_clear_error(args, env, message, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, TickwiseError) and message in str(result.exception)
    assert result.output == ""


def test_detect_bar_rows_that_are_not_bars_are_set_aside_with_their_reason(tmp_path):
    lines = (FIXTURES / "ibm.us.txt").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    cols = rows[50].split(",")
    cols[4] = "-1"  # a negative close
    rows[50] = ",".join(cols)
    rows.insert(80, rows[79])  # a duplicate bar
    src = tmp_path / "ibm.us.txt"
    src.write_text("\n".join([header, *rows]) + "\n")
    out = tmp_path / "scores.csv"
    (tmp_path / "scores.rejected.csv").write_text("reason,payload\nstale,{}\n")  # an earlier run's
    result = CliRunner().invoke(app, ["detect", "--data", str(src), "--detector", "zscore", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pl.read_csv(out).height == 99  # 101 rows in, two not bars
    aside = pl.read_csv(tmp_path / "scores.rejected.csv")
    assert sorted(aside["reason"].to_list()) == ["bad_price", "duplicate"]
    assert "-1" in aside.filter(pl.col("reason") == "bad_price")["payload"][0]
    assert "2 input rows are not bars and were not scored" in result.output
    clean = CliRunner().invoke(app, ["detect", "--data", str(FIXTURES / "ibm.us.txt"), "--detector", "zscore",
                                     "--out", str(out)])
    assert clean.exit_code == 0 and not (tmp_path / "scores.rejected.csv").exists()
    assert "not scored" not in clean.output


@pytest.mark.parametrize(("value", "what"), [("nan", "'nan'"), ("inf", "'inf'"), ("", "): empty;")])
def test_detect_value_that_is_not_a_finite_number_names_its_line(tmp_path, value, what):
    src = tmp_path / "cpu.csv"
    src.write_text("timestamp,cpu\n" + "".join(
        f"2026-01-01T00:{i // 60:02d}:{i % 60:02d},{value if i == 70 else i % 7}\n" for i in range(300)))
    result = CliRunner().invoke(app, ["detect", "--data", str(src), "--out", str(tmp_path / "o.csv")])
    assert isinstance(result.exception, DataError), result.output
    message = str(result.exception)
    assert "column 'cpu' must hold finite numbers" in message and "line 72 (timestamp 2026-01-01T00:01:10)" in message
    assert what in message and not (tmp_path / "o.csv").exists()


def test_evaluate_anomaly_says_which_series_are_too_short_and_fails_when_none_is_left(tmp_path):
    short = FIXTURES / "ibm.us.txt"  # 100 bars: fewer than the warm-up alone
    goog = shared_file("goog_daily_backtesting.csv")
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["evaluate-anomaly", "--data", str(short), "--data", str(goog), "--detectors",
                                      "zscore", "--kinds", "volume_burst", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "left out, shorter than the 1100 bars an evaluation needs" in result.output
    assert "ibm.us.txt IBM (100 bars)" in result.output
    assert json.loads(out.read_text())["settings"]["series"] == 1
    alone = CliRunner().invoke(app, ["evaluate-anomaly", "--data", str(short), "--detectors", "zscore"])
    assert isinstance(alone.exception, DataError)
    assert "no series to evaluate: each needs at least 1100 bars, was ibm.us.txt IBM (100 bars)" in str(alone.exception)
