"""Live streams of tick frames: the simulator on the wall clock, and file replay."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from tickwise.sources.files import load_bars
from tickwise.sources.simulator import Simulator
from tickwise.timeframes import timeframe_ns


def simulate_live(sim: Simulator, stop: threading.Event, *, interval_s: float = 0.1) -> Iterator[pl.DataFrame]:
    """Yield the simulator's ticks every ``interval_s``, stamped with the wall clock."""
    sim.now_ns = time.time_ns()
    while not stop.is_set():
        stop.wait(interval_s)
        now = time.time_ns()
        if now > sim.now_ns:
            yield sim.generate(now - sim.now_ns)


def bars_to_ticks(bars: pl.DataFrame) -> pl.DataFrame:
    """Four ticks per bar (open, low/high, high/low, close) that rebuild the bar exactly.

    The extremes are visited in the order that fits the bar's direction; each tick carries
    a quarter of the volume. Aggregating the ticks at the bar's interval gives the bar back.

    Examples
    --------
    >>> import datetime as dt
    >>> b = pl.DataFrame({"symbol": ["A"], "timeframe": ["1d"], "ts": [dt.datetime(2024, 1, 2, tzinfo=dt.UTC)],
    ...                   "open": [10.0], "high": [12.0], "low": [9.0], "close": [11.0], "volume": [400.0]})
    >>> bars_to_ticks(b)["price"].to_list()
    [10.0, 9.0, 12.0, 11.0]
    """
    if bars.height == 0:
        return pl.DataFrame(schema={"symbol": pl.Utf8, "ts_event": pl.Int64, "price": pl.Float64,
                                    "size": pl.Float64, "id": pl.Utf8})
    sizes = {tf: timeframe_ns(tf) for tf in bars["timeframe"].unique().to_list()}
    length = bars["timeframe"].replace_strict(sizes, return_dtype=pl.Int64).to_numpy()
    start = bars["ts"].dt.epoch("ns").to_numpy()
    up = (bars["close"] >= bars["open"]).to_numpy()
    first = np.where(up, bars["low"].to_numpy(), bars["high"].to_numpy())
    second = np.where(up, bars["high"].to_numpy(), bars["low"].to_numpy())
    n = bars.height
    prices = np.stack([bars["open"].to_numpy(), first, second, bars["close"].to_numpy()], axis=1).ravel()
    offsets = np.stack([np.zeros(n, dtype=np.int64), length // 4, length // 2, length - 1], axis=1)
    ts = (start[:, None] + offsets).ravel()
    size = np.repeat(bars["volume"].to_numpy() / 4.0, 4)
    symbols = np.repeat(bars["symbol"].to_numpy(), 4)
    frame = pl.DataFrame({"symbol": symbols, "ts_event": ts, "price": prices, "size": size})
    return frame.with_columns(
        pl.format("{}-{}", "symbol", "ts_event").alias("id")
    ).sort("ts_event", maintain_order=True)


def file_ticks(path: str | Path, *, symbol: str | None = None, timeframe: str | None = None,
               tz: str = "UTC") -> pl.DataFrame:
    """All ticks of a file: its ticks, or four per bar for a bars file (naive date-times in ``tz``)."""
    loaded = load_bars(path, symbol=symbol, timeframe=timeframe, tz=tz)
    if loaded.kind == "ticks":
        from tickwise.sources.files import read_ticks

        return read_ticks(path, symbol=symbol, tz=tz).sort("ts_event", maintain_order=True)
    return bars_to_ticks(loaded.bars)


def replay(ticks: pl.DataFrame, stop: threading.Event, *, speed: float = 0.0,
           chunk: int = 10_000, step_s: float = 0.05) -> Iterator[pl.DataFrame]:
    """Yield ticks in event-time order, ``speed`` times faster than real time (0: at once)."""
    if ticks.height == 0:
        return
    if speed <= 0:
        for i in range(0, ticks.height, chunk):
            if stop.is_set():
                return
            yield ticks.slice(i, chunk)
        return
    ts = ticks["ts_event"].to_numpy()
    t0, wall0 = int(ts[0]), time.monotonic()
    i = 0
    while i < ticks.height and not stop.is_set():
        due = t0 + int((time.monotonic() - wall0) * speed * 1e9)
        j = int(np.searchsorted(ts, due, side="right"))
        if j > i:
            yield ticks.slice(i, j - i)
            i = j
        else:
            # sleep until the next tick is due, in small steps so stop is honoured
            wait = (int(ts[i]) - due) / speed / 1e9
            stop.wait(min(max(wait, 0.001), step_s))
