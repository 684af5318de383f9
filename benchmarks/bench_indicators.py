"""Indicator speed: batch over 1,000,000 bars against TA-Lib, and one streaming bar.

Prints a table and writes ``artifacts/benchmarks/bench_indicators.json``.

    .venv/bin/python benchmarks/bench_indicators.py [--quick]

Goals (issue 3): the batch set within 3x of TA-Lib's time for the same indicators; one
streaming update of the whole set for one bar under 5 µs.

The batch kernels are compiled by numba on first use and cached on disk; the timings are
taken after a warm-up call, and the one-off costs are reported apart: a fresh process's
import plus first call of every kernel, with an empty cache (compile) and with a filled one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import talib
from talib import stream

from tickwise.indicators import IndicatorSet, parse_indicators

SET = "sma_9,ema_12,wma_10,rsi_14,macd,bbands_20,atr_14,obv,vwap,volume_sma_20"

TALIB = {
    "sma_9": lambda a: talib.SMA(a["close"], 9),
    "ema_12": lambda a: talib.EMA(a["close"], 12),
    "wma_10": lambda a: talib.WMA(a["close"], 10),
    "rsi_14": lambda a: talib.RSI(a["close"], 14),
    "macd": lambda a: talib.MACD(a["close"], 12, 26, 9),
    "bbands_20": lambda a: talib.BBANDS(a["close"], 20, 2.0, 2.0, 0),
    "atr_14": lambda a: talib.ATR(a["high"], a["low"], a["close"], 14),
    "obv": lambda a: talib.OBV(a["close"], a["volume"]),
    "vwap": None,  # not in TA-Lib
    "volume_sma_20": lambda a: talib.SMA(a["volume"], 20),
}


def bars(n: int, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    spread = np.abs(rng.normal(0, 0.0015, n)) * close
    high, low = close + spread, close - spread
    return {"high": high, "low": low, "close": close, "volume": rng.integers(100, 10_000, n).astype(float)}


_FIRST_CALL = """
import json, time
t0 = time.perf_counter()
import numpy as np
from tickwise.indicators import parse_indicators
t1 = time.perf_counter()
a = {k: np.linspace(1.0, 2.0, 500) for k in ("high", "low", "close", "volume")}
for spec in parse_indicators(%r):
    spec.batch(a)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_batch_s": t2 - t1}))
"""


def one_off_costs() -> dict[str, float]:
    """Import and first-call seconds in fresh processes: empty numba cache, then filled."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("compile", "cached"):
            run = subprocess.run([sys.executable, "-c", _FIRST_CALL % SET], env=env, check=True,
                                 capture_output=True, text=True)
            got = json.loads(run.stdout)
            out["import_s"] = got["import_s"]
            out[f"first_batch_{label}_s"] = got["first_batch_s"]
    return out


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k bars, fewer repeats")
    parser.add_argument("--bars", type=int, default=None)
    args = parser.parse_args()
    n = args.bars or (100_000 if args.quick else 1_000_000)
    repeat = 3 if args.quick else 7
    a = bars(n)
    rows = []
    costs = one_off_costs()
    for spec in parse_indicators(SET):
        spec.batch(a)  # warm-up: the first call loads (or compiles) the kernel
        ours = best_of(lambda spec=spec: spec.batch(a), repeat)
        ref = TALIB[spec.name]
        theirs = best_of(lambda ref=ref: ref(a), repeat) if ref else None
        rows.append({"indicator": spec.name, "tickwise_ms": ours * 1e3,
                     "talib_ms": None if theirs is None else theirs * 1e3,
                     "ratio": None if theirs is None else ours / theirs})
    with_ref = [r for r in rows if r["talib_ms"] is not None]
    total_ours = sum(r["tickwise_ms"] for r in with_ref)
    total_talib = sum(r["talib_ms"] for r in with_ref)

    # streaming: the whole set, one bar at a time
    live = IndicatorSet(SET)
    m = min(n, 200_000 if not args.quick else 50_000)
    cols = [a[k][:m].tolist() for k in ("high", "low", "close", "volume")]
    update = live.update
    best_stream = float("inf")
    for _ in range(3):
        live.reset()
        start = time.perf_counter()
        for h, lo, c, v in zip(*cols, strict=True):
            update(h, lo, c, v)
        best_stream = min(best_stream, (time.perf_counter() - start) / m)
    start = time.perf_counter()
    for _ in range(m // 10):
        live.values()
    read_s = (time.perf_counter() - start) / (m // 10)

    # TA-Lib's own streaming handles for the same set (C, one call per indicator per bar)
    hist = {k: v[:100] for k, v in a.items()}
    handles = [
        (stream.SMA(hist["close"], timeperiod=9).update, "c"),
        (stream.EMA(hist["close"], timeperiod=12).update, "c"),
        (stream.WMA(hist["close"], timeperiod=10).update, "c"),
        (stream.RSI(hist["close"], timeperiod=14).update, "c"),
        (stream.MACD(hist["close"]).update, "c"),
        (stream.BBANDS(hist["close"], timeperiod=20).update, "c"),
        (stream.ATR(hist["high"], hist["low"], hist["close"], timeperiod=14).update, "hlc"),
        (stream.OBV(hist["close"], hist["volume"]).update, "cv"),
        (stream.SMA(hist["volume"], timeperiod=20).update, "v"),
    ]
    k = min(m, 50_000)
    start = time.perf_counter()
    for h, lo, c, v in zip(*[col[100:100 + k] for col in cols], strict=True):
        for fn, kind in handles:
            if kind == "c":
                fn(c)
            elif kind == "hlc":
                fn(h, lo, c)
            elif kind == "cv":
                fn(c, v)
            else:
                fn(v)
    talib_stream_s = (time.perf_counter() - start) / k

    width = max(len(r["indicator"]) for r in rows)
    print(f"batch indicators over {n:,} bars (best of {repeat})")
    print(f"{'indicator':<{width}}  {'tickwise ms':>11}  {'TA-Lib ms':>9}  {'ratio':>6}")
    for r in rows:
        ref = "-" if r["talib_ms"] is None else f"{r['talib_ms']:.2f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        print(f"{r['indicator']:<{width}}  {r['tickwise_ms']:>11.2f}  {ref:>9}  {ratio:>6}")
    print(f"{'total*':<{width}}  {total_ours:>11.2f}  {total_talib:>9.2f}  {total_ours / total_talib:>5.2f}x"
          "   (*indicators TA-Lib has; goal <= 3x)")
    print()
    print(f"streaming, full set of {len(live.indicators)} indicators, one bar: "
          f"{best_stream * 1e6:.2f} µs per update (goal < 5 µs), + {read_s * 1e6:.2f} µs to read all values")
    print(f"TA-Lib stream handles for the same set (without VWAP): {talib_stream_s * 1e6:.2f} µs per bar")
    print(f"one-off, fresh process: import {costs['import_s'] * 1e3:.0f} ms; first batch call of "
          f"every kernel {costs['first_batch_compile_s'] * 1e3:.0f} ms with an empty numba cache "
          f"(compile), {costs['first_batch_cached_s'] * 1e3:.0f} ms with a filled one")
    result = {
        "benchmark": "bench_indicators", "bars": n, "repeat": repeat, "python": platform.python_version(),
        "machine": platform.machine(), "batch": rows, "batch_total_ms": total_ours,
        "talib_total_ms": total_talib, "batch_ratio": total_ours / total_talib,
        "streaming_update_us": best_stream * 1e6, "streaming_read_us": read_s * 1e6,
        "talib_stream_update_us": talib_stream_s * 1e6, "streaming_set": SET, **costs,
    }
    out = Path("artifacts/benchmarks/bench_indicators.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
