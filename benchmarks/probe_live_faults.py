"""The live path against labelled faults, fault by fault: which detector flagged each one.

`tickwise up --faults N` prints each detector's counts by kind; this runs the same `Runtime`
(simulator, bus, bars, warehouse, anomaly stage, no API or dashboard) with the fault kinds and
rate chosen here, then lists every fault with the detectors that flagged it (a bar it touches
or the next, as `match_faults` counts) and the smallest timeframe's bars around it (high-low
range and volume), so a miss can be read: a quote whose bars are flat anyway, a symbol's
first minutes, a shape the detector does not see.

    .venv/bin/python benchmarks/probe_live_faults.py [--kinds frozen_feed] [--per-minute 10]
        [--duration 240] [--data-dir /tmp/probe-faults]

The data directory is emptied first (a saved detector state would change what is measured).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import polars as pl

from tickwise.config import Settings
from tickwise.runtime import Runtime, faulty_simulator
from tickwise.sources.faults import KINDS
from tickwise.sources.simulator import NS
from tickwise.timeframes import timeframe_ns


def _epoch_ns(frame: pl.DataFrame) -> pl.DataFrame:
    ts = pl.col("ts")
    return frame.with_columns(ts.dt.epoch("ns") if frame["ts"].dtype == pl.Datetime else ts.cast(pl.Int64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, among {', '.join(KINDS)}")
    parser.add_argument("--per-minute", type=float, default=12.0, help="faults started per minute over all symbols")
    parser.add_argument("--duration", type=float, default=240.0, help="seconds of the run")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/tickwise-probe-faults"))
    args = parser.parse_args()
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    shutil.rmtree(args.data_dir, ignore_errors=True)
    settings = Settings(data_dir=args.data_dir)
    faulty = faulty_simulator(settings, "sim", args.per_minute, kinds)
    if faulty is None:
        parser.error("--per-minute must be > 0")
    runtime = Runtime(settings)
    summary = runtime.run("sim", duration_s=args.duration, status=False, faults=faulty)
    for line in summary.fault_lines():
        print(line)
    tf = min(settings.timeframes, key=timeframe_ns)
    width = timeframe_ns(tf)
    flagged = _epoch_ns(pl.DataFrame(runtime.warehouse.read("anomalies", where={"timeframe": tf})))
    bars = _epoch_ns(pl.DataFrame(runtime.warehouse.read("bars", where={"timeframe": tf})))
    print(f"\nevery fault, with the detectors that flagged it and its {tf} bars (high-low, volume), "
          "from the bar before it to the bar after")
    for f in faulty.faults:
        first, last = f.start_ns // width, f.end_ns // width + 1
        mine = flagged.filter((pl.col("symbol") == f.symbol) & (pl.col("ts") // width).is_between(first, last))
        around = bars.filter((pl.col("symbol") == f.symbol) & (pl.col("ts") // width).is_between(first - 1, last))
        shown = ", ".join(f"{h - lo:.4g}/{v:.0f}" for h, lo, v in around.select("high", "low", "volume").iter_rows())
        print(f"{(f.start_ns - faulty.start_ns) / NS:7.1f} s  {f.symbol:<8} {f.kind:<12} size {f.size:<6g} "
              f"flagged by {', '.join(sorted(set(mine['detector']))) or '-':<30} bars {shown}")
    runtime.close()


if __name__ == "__main__":
    main()
