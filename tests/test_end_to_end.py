"""`tickwise up` end to end: simulator → bars → signals, in the warehouse and in the lake."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tests.test_cli_pipeline import tw


def test_up_produces_signals_in_warehouse_and_the_same_rows_in_the_lake(tmp_path: Path) -> None:
    # 1s bars so that half a minute is enough for SMA(21) and its volume window
    env = {"TICKWISE_TIMEFRAMES": "1s", "TICKWISE_TICK_RATE": "3000", "TICKWISE_ANOMALY_DETECTORS": "zscore"}
    out = tw(["up", "--duration", "35", "--no-serve"], tmp_path, **env)
    assert out.returncode == 0, out.stderr
    signals = tw(["signals", "AAPL", "--timeframe", "1s", "--last", "100", "--format", "csv"], tmp_path, **env)
    assert signals.returncode == 0, signals.stderr
    rows = list(csv.DictReader(io.StringIO(signals.stdout)))
    assert len(rows) >= 25
    assert {r["signal"] for r in rows} <= {"BUY", "SELL", "HOLD"}
    assert any(r["reason"] != "warming up" for r in rows)
    lake = tw(["lake", "query", "SELECT ts, signal FROM signals WHERE symbol = 'AAPL' AND timeframe = '1s' "
               "AND rule = 'sma_cross' ORDER BY ts", "--csv", "--max-rows", "1000"], tmp_path, **env)
    assert lake.returncode == 0, lake.stderr
    lake_rows = list(csv.DictReader(io.StringIO(lake.stdout)))
    in_warehouse = {(r["ts"][:19].replace("T", " "), r["signal"]) for r in rows}
    in_lake = {(r["ts"][:19].replace("T", " "), r["signal"]) for r in lake_rows}
    assert in_warehouse == in_lake
