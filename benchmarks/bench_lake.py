"""Lake benchmark: write bars to a local lake, run the sma_cross SQL over them, compare pandas.

Builds N bars (default 10,000,000: 100 symbols x 100,000 one-second bars, a random walk with
integer volumes), writes them to a fresh local lake, then times

- ``lake write``: the `LakeWriter` flush (Hive-partitioned Parquet, atomic commits);
- ``sql signals``: `tickwise.lake.query.query` over `sma_cross_sql()`: the full ``signals``
  rows (with reason text) as an Arrow table;
- ``sql signals, no text``: the same rule returning only BUY/SELL rows' keys (what a report
  would ask: where are the signals);
- ``pandas read`` and ``pandas signals``: the same rule with pandas ``groupby().rolling()``,
  over the same bars read from the lake (reading timed apart).

The pandas and SQL signals are checked to be identical before any figure is printed.

Run: ``.venv/bin/python benchmarks/bench_lake.py`` (``--quick``: 1,000,000 bars, 20 symbols).
Writes ``artifacts/benchmarks/bench_lake.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from tickwise.lake import open_lake
from tickwise.lake.query import query, sma_cross_sql

FAST, SLOW, VOLUME_WINDOW, VOLUME_FACTOR = 9, 21, 20, 1.5
START_NS = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC


def make_bars(symbols: int, per_symbol: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = symbols * per_symbol
    steps = rng.normal(0, 0.02, (symbols, per_symbol))
    close = (100 + np.cumsum(steps, axis=1)).ravel()
    spread = np.abs(rng.normal(0, 0.01, n))
    volume = rng.integers(1, 500, n).astype(np.float64) * np.where(rng.random(n) < 0.1, 4, 1)
    ts = np.tile(START_NS + np.arange(per_symbol, dtype=np.int64) * 10**9, symbols)
    names = np.repeat(np.array([f"S{i:03d}" for i in range(symbols)]), per_symbol)
    return pa.table({
        "symbol": pa.array(names, pa.string()),
        "timeframe": pa.array(np.full(n, "1s"), pa.string()),
        "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
        "open": close, "high": close + spread, "low": close - spread, "close": close,
        "volume": volume, "trades": np.ones(n, dtype=np.int64), "vwap": close,
    })


def pandas_signals(df: pd.DataFrame) -> pd.DataFrame:
    """The sma_cross rule (tickwise.signals.sma_cross) with pandas rolling windows."""
    df = df.sort_values(["symbol", "timeframe", "ts"], kind="stable").reset_index(drop=True)
    g = df.groupby(["symbol", "timeframe"], sort=False)
    fast = g["close"].rolling(FAST).mean().reset_index(drop=True)
    slow = g["close"].rolling(SLOW).mean().reset_index(drop=True)
    vsum = g["volume"].rolling(VOLUME_WINDOW).sum().reset_index(drop=True)
    vsum_prev = vsum.groupby([df["symbol"], df["timeframe"]], sort=False).shift(1)
    index = g.cumcount()
    diff, band = fast - slow, 1e-9 * slow.abs()
    state = np.where(diff > band, 1, np.where(diff < -band, -1, 0))
    state = pd.Series(state, index=df.index)
    prev = state.groupby([df["symbol"], df["timeframe"]], sort=False).shift(1).fillna(0)
    warm = index >= max(SLOW, VOLUME_WINDOW)
    confirmed = df["volume"] * VOLUME_WINDOW > VOLUME_FACTOR * vsum_prev
    buy = warm & (prev <= 0) & (state == 1) & confirmed
    sell = warm & (prev >= 0) & (state == -1) & confirmed
    signal = np.where(buy, "BUY", np.where(sell, "SELL", "HOLD"))
    return pd.DataFrame({"symbol": df["symbol"], "ts": df["ts"], "signal": signal,
                         "fast": fast, "slow": slow})


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M bars over 20 symbols")
    parser.add_argument("--symbols", type=int, default=None)
    parser.add_argument("--bars-per-symbol", type=int, default=None)
    args = parser.parse_args()
    symbols = args.symbols or (20 if args.quick else 100)
    per_symbol = args.bars_per_symbol or (50_000 if args.quick else 100_000)
    n = symbols * per_symbol

    bars = make_bars(symbols, per_symbol)
    root = Path(tempfile.mkdtemp(prefix="tw-bench-lake-"))
    try:
        lake = open_lake(f"file://{root}")
        writer = lake.writer(compact_files=0)
        writer.append("bars", bars)
        files, write_s = timed(writer.flush)
        del bars

        sql = sma_cross_sql(fast=FAST, slow=SLOW, volume_window=VOLUME_WINDOW, volume_factor=VOLUME_FACTOR)
        full, sql_s = timed(lambda: query(lake, sql))
        # DuckDB drops the unused reason text from the plan when only the keys are asked for
        lean_sql = f"SELECT symbol, ts, signal FROM (\n{sql}\n) WHERE signal <> 'HOLD'"
        hits, lean_s = timed(lambda: query(lake, lean_sql))

        frame, read_s = timed(lambda: lake.read("bars", columns=["timeframe", "ts", "close", "volume"]).to_pandas())
        pdsig, pandas_s = timed(lambda: pandas_signals(frame))

        # the two must agree on every bar before any figure counts
        sql_signal = full.column("signal").to_numpy(zero_copy_only=False)
        assert len(sql_signal) == len(pdsig) == n
        assert (sql_signal == pdsig["signal"].to_numpy()).all(), "pandas and SQL signals differ"
        buys = int((sql_signal == "BUY").sum())
        sells = int((sql_signal == "SELL").sum())
        assert hits.num_rows == buys + sells
    finally:
        shutil.rmtree(root, ignore_errors=True)

    rows = [
        ("lake write (Parquet, atomic)", write_s, n / write_s),
        ("sql signals: full rows + reasons", sql_s, n / sql_s),
        ("sql signals: BUY/SELL keys only", lean_s, n / lean_s),
        ("pandas: read bars from lake", read_s, n / read_s),
        ("pandas: signals (rolling)", pandas_s, n / pandas_s),
        ("pandas: read + signals", read_s + pandas_s, n / (read_s + pandas_s)),
    ]
    print(f"lake benchmark: {n:,} bars, {symbols} symbols x {per_symbol:,} 1s bars, "
          f"{len(files)} files; {buys} BUY, {sells} SELL (pandas == SQL on every bar)")
    print(f"{'step':<36} {'seconds':>9} {'bars/s':>14}")
    for name, secs, rate in rows:
        print(f"{name:<36} {secs:>9.2f} {rate:>14,.0f}")
    out = {
        "benchmark": "bench_lake",
        "bars": n, "symbols": symbols, "bars_per_symbol": per_symbol, "files": len(files),
        "buy": buys, "sell": sells, "pandas_equals_sql": True,
        "results": [{"step": name, "seconds": round(secs, 4), "bars_per_s": round(rate)}
                    for name, secs, rate in rows],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
    }
    dest = Path("artifacts/benchmarks/bench_lake.json")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
