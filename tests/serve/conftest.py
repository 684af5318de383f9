"""A warehouse filled with real bars (and analytics rows derived from them), and a running API."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.conftest import FIXTURES, SHARED_DATA
from tickwise.app import build_warehouse
from tickwise.bus.memory import MemoryBus
from tickwise.config import Settings, load_settings
from tickwise.sources.files import read_bars

API_KEY = "test-key-7f3a"

#: duckdb 1.5 deprecates fetch_arrow_table/fetch_record_batch, which the warehouse still calls
WAREHOUSE_WARNINGS = pytest.mark.filterwarnings("ignore:fetch_(arrow_table|record_batch):DeprecationWarning")


def declare_anomalies_table() -> None:
    """Declare the anomaly package's ``anomalies`` table (the API itself never needs it)."""
    importlib.import_module("tickwise.anomaly.tables")


def real_bars() -> pl.DataFrame:
    """AAPL daily bars from the committed fixture, plus MSFT and IBM from the shared file when present."""
    frames = [read_bars(FIXTURES / "aapl_daily_wiki.csv", symbol="AAPL", timeframe="1d")]
    bokeh = SHARED_DATA / "stocks_daily_quandl_wiki_bokeh.csv"
    if bokeh.exists():
        others = read_bars(bokeh, timeframe="1d").filter(pl.col("symbol").is_in(["MSFT", "IBM"]))
        frames.append(others.group_by("symbol", maintain_order=True).tail(400))
    return pl.concat(frames, how="vertical_relaxed").sort("symbol", "ts")


def naive_forecasts(bars: pl.DataFrame) -> pl.DataFrame:
    """One-step random-walk forecasts with normal intervals: what a naive model publishes."""
    out = []
    for (symbol,), g in bars.group_by(["symbol"], maintain_order=True):
        close = g["close"].to_numpy()
        sigma = float(np.std(np.diff(close)))
        prev = close[:-1]
        out.append(pl.DataFrame({
            "symbol": symbol, "timeframe": "1d", "ts": g["ts"][1:], "model": "naive", "version": "1",
            "open": prev, "high": prev + sigma, "low": prev - sigma, "close": prev,
            "lo_80": prev - 1.2816 * sigma, "hi_80": prev + 1.2816 * sigma,
            "lo_95": prev - 1.96 * sigma, "hi_95": prev + 1.96 * sigma,
        }))
    return pl.concat(out)


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[tuple[Settings, object, pl.DataFrame]]:
    """Settings, a DuckDB warehouse with real bars and naive forecasts, and the bars."""
    import tickwise.forecast.tables  # noqa: F401  (declares the forecasts table)

    declare_anomalies_table()
    settings = load_settings(data_dir=tmp_path / "data", bus="memory://", api_key=API_KEY, api_port=0)
    warehouse = build_warehouse(settings)
    bars = real_bars()
    warehouse.upsert("bars", bars.to_arrow())
    warehouse.upsert("forecasts", naive_forecasts(bars).to_arrow())
    yield settings, warehouse, bars
    warehouse.close()


@pytest.fixture
def api(filled: tuple[Settings, object, pl.DataFrame]) -> Iterator[tuple[str, MemoryBus, pl.DataFrame]]:
    """A running API (uvicorn on a free 127.0.0.1 port) over the filled warehouse and a memory bus."""
    from tickwise.serve.runtime import start_services

    settings, warehouse, bars = filled
    bus = MemoryBus(partitions=2, capacity=8)
    handle = start_services(settings, warehouse=warehouse, bus=bus, dashboard=False, host="127.0.0.1", port=0)
    try:
        yield handle.api_url, bus, bars
    finally:
        handle.stop()
        bus.close()
