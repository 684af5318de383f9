"""`tickwise lake …` and `tickwise etl` end to end on a local lake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.conftest import shared_file
from tickwise.cli import app


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"TICKWISE_DATA_DIR": str(tmp_path / "data"), "TICKWISE_LAKE": ""}


@pytest.fixture
def bars_file(tmp_path: Path) -> Path:
    """Fourteen months of real AAPL daily bars, as a CSV in the bokeh file's own format."""
    lines = shared_file("stocks_daily_quandl_wiki_bokeh.csv").read_text().splitlines()
    path = tmp_path / "aapl.csv"
    path.write_text("\n".join(lines[:301]) + "\n")
    return path


def run(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_lake_load_tables_query_signals(env: dict[str, str], bars_file: Path) -> None:
    assert "wrote 300 bars of 1 symbols" in run(env, "lake", "load", str(bars_file))
    tables = json.loads(run(env, "lake", "tables", "--json"))
    assert [(t["name"], t["rows"], t["partitions"]) for t in tables] == [("bars", 300, 300)]
    rows = json.loads(run(env, "lake", "query", "SELECT symbol, count(*) AS n FROM bars GROUP BY 1", "--json"))
    assert rows == [{"symbol": "AAPL", "n": 300}]
    signals = json.loads(run(env, "lake", "signals", "--symbol", "AAPL", "--last", "100", "--json"))
    assert signals and {s["signal"] for s in signals} <= {"BUY", "SELL"}
    assert all(s["reason"].startswith("SMA9 ") for s in signals)
    assert "WITH bars_in AS" in run(env, "lake", "signals", "--sql")


def test_cli_etl_writes_features_file_and_lake(env: dict[str, str], bars_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"
    text = run(env, "etl", "--data", str(bars_file), "--out", str(out), "--gaps", "fill")
    assert "wrote" in text and "filled rows" in text
    features = pl.read_parquet(out)
    assert {"gap", "filled", "return_1", "log_return_1", "rsi_14", "log_return_1_z100"} <= set(features.columns)
    run(env, "etl", "--data", str(bars_file), "--out", str(out), "--gaps", "fill")  # a rerun replaces
    n = json.loads(run(env, "lake", "query", "SELECT count(*) AS n FROM features", "--json"))[0]["n"]
    assert n == features.height


def test_cli_lake_write_statement_exits_2_with_one_line(env: dict[str, str], bars_file: Path) -> None:
    run(env, "lake", "load", str(bars_file))
    proc = subprocess.run([sys.executable, "-c", "from tickwise.cli import main; main()",
                           "lake", "query", "DROP VIEW bars"],
                          env={**__import__("os").environ, **env}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: lake queries are read-only: expected one SELECT statement, was DROP"
