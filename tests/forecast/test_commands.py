"""The commands, run as a user runs them: real files, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_file

TICKWISE = str(Path(sys.executable).with_name("tickwise"))


def run(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TICKWISE_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    return subprocess.run([TICKWISE, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_forecast_command_prints_intervals_as_json(tmp_path):
    path = shared_file("goog_daily_backtesting.csv")
    out = run("forecast", "GOOG", "--model", "naive", "--horizon", "3", "--data", str(path), "--json", data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert len(doc["forecasts"]) == 3
    first = doc["forecasts"][0]
    assert first["lo_95"] < first["lo_80"] < first["close"] == doc["last_close"] < first["hi_80"] < first["hi_95"]


def test_evaluate_command_writes_json_and_report(tmp_path):
    path = shared_file("msft_daily_pmdarima.csv")
    out = run("evaluate", "--models", "arima,naive,drift", "--data", str(path), "--origins", "30",
              "--refit-every", "15", "--window", "200", "--json", str(tmp_path / "e.json"),
              "--report", str(tmp_path / "e.html"), data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "e.json").read_text())
    assert set(doc["models"]) == {"arima", "naive", "drift"}
    assert "random walk" in out.stdout and "dm_p" in out.stdout
    assert "Plotly.newPlot" in (tmp_path / "e.html").read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1,2,0.5,1.6,10\n", "at least 20 bars, was 2"),
        ("Date,Open,High,Low,Close,Volume\n" + "".join(f"2024-01-{d:02d},5,5,5,5,10\n" for d in range(1, 31)), "constant series"),
    ],
)
def test_forecast_command_bad_data_exits_2_with_one_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    out = run("forecast", "BAD", "--model", "arima", "--data", str(path), data_dir=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_forecast_command_gaps_are_noted_not_fatal(tmp_path):
    rows = [f"2024-01-{d:02d},{10 + d % 3},{12 + d % 3},{9 + d % 3},{11 + d % 2},10\n" for d in range(1, 29)]
    rows += [f"2024-03-{d:02d},{10 + d % 3},{12 + d % 3},{9 + d % 3},{11 + d % 2},10\n" for d in range(1, 29)]
    path = tmp_path / "gappy.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n" + "".join(rows))
    out = run("forecast", "GAP", "--model", "naive", "--data", str(path), data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "gaps longer than 5 bar intervals" in out.stderr


def test_models_train_list_promote_and_unknown_version(tmp_path):
    path = shared_file("goog_daily_backtesting.csv")
    out = run("models", "train", "--model", "arima", "--data", str(path), "--last", "300", "--origins", "20", data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "registered arima version 1" in out.stdout
    assert run("models", "promote", "arima", "1", data_dir=tmp_path).returncode == 0
    listed = json.loads(run("models", "list", "--json", data_dir=tmp_path).stdout)
    assert listed[0]["promoted"] is True and listed[0]["metrics"]["symbol"] == "GOOG" and listed[0]["artifact_bytes"] > 0
    bad = run("models", "promote", "arima", "9", data_dir=tmp_path)
    assert bad.returncode == 2 and "version 9 is not registered" in bad.stderr


def test_tune_command_runs_optuna_trials(tmp_path):
    path = shared_file("goog_daily_backtesting.csv")
    out = run("tune", "--model", "lstm", "--trials", "2", "--data", str(path), "--origins", "10", "--window", "150", data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "best of 2 trials" in out.stdout
    assert "window" in json.loads(out.stdout.splitlines()[-1])


def test_forecast_command_reads_bars_from_the_warehouse(tmp_path):
    import polars as pl

    from tickwise.app import build_warehouse
    from tickwise.config import load_settings
    from tickwise.sources.files import read_bars

    bars = read_bars(shared_file("goog_daily_backtesting.csv")).tail(120).with_columns(
        pl.lit("1m").alias("timeframe"), pl.lit(0).cast(pl.Int64).alias("trades"))
    warehouse = build_warehouse(load_settings(data_dir=tmp_path))
    try:
        warehouse.upsert("bars", bars.to_arrow())
    finally:
        warehouse.close()
    out = run("forecast", "GOOG", "--model", "drift", "--json", data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["last_close"] == bars["close"][-1]
    missing = run("forecast", "NOPE", "--model", "drift", data_dir=tmp_path)
    assert missing.returncode == 2 and "no 1m bars for NOPE" in missing.stderr
