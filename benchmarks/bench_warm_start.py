"""Warm start of the live anomaly stage: how long a restarted stage takes to step its series
through their stored bars before it scores the first new bar.

A DuckDB warehouse gets ``--bars`` stored 1m bars for each of ``--symbols`` symbols
(synthetic, as in bench_anomaly); a fresh `AnomalyStage` with the warehouse's history then
receives one new bar per symbol. Timed: reading the stored bars of all series in one call,
as the stage does (`Warehouse.last_rows`; and, for comparison, one read per series), and the
whole first call (read, warm-up, scoring the new bars). Then the saved state: that stage's
`AnomalyStage.checkpoint` (exporting every series' state) and its commit to the warehouse,
and the first call of a second fresh stage receiving the next bar, which loads the saved
state instead of warming up (a restart with saved state). Prints a table and writes
artifacts/benchmarks/bench_warm_start.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_anomaly import synthetic_bars

from tickwise.alerts.notifiers import MemoryNotifier
from tickwise.anomaly.stage import AnomalyStage
from tickwise.pipeline.stages import warehouse_history
from tickwise.store import open_warehouse


def bar_frame(n_symbols: int, n_bars: int) -> pl.DataFrame:
    fields = synthetic_bars(n_bars, n_symbols)
    t0 = 1_700_000_000 * 10**9 // 60_000_000_000 * 60_000_000_000
    return pl.DataFrame({
        "symbol": [f"S{i:04d}" for i in range(n_symbols)] * n_bars,
        "timeframe": "1m",
        "ts": [t0 + t * 60 * 10**9 for t in range(n_bars) for _ in range(n_symbols)],
        **{k: v.reshape(-1) for k, v in fields.items()},
    }).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))


def run(n_symbols: int, n_bars: int, detectors: tuple[str, ...]) -> dict[str, object]:
    frame = bar_frame(n_symbols, n_bars + 2)
    stored, new = frame.head(n_symbols * n_bars), frame.slice(n_symbols * n_bars, n_symbols)
    after = frame.tail(n_symbols)
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = open_warehouse(f"duckdb://{tmp}/w.duckdb")
        try:
            warehouse.commit({"bars": stored.to_arrow()})
            history = warehouse_history(warehouse)
            series = [(s, "1m", int(new["ts"].dt.epoch("ns")[0])) for s in new["symbol"].to_list()]
            t0 = time.perf_counter()
            for s, tf, before in series:
                history(s, tf, before, n_bars)
            each_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            history.many(series, n_bars)
            read_s = time.perf_counter() - t0
            def stage_() -> AnomalyStage:  # saving every hour: not in the first call
                return AnomalyStage(timeframes=("1m",), detectors=detectors, notifiers=[MemoryNotifier()],
                                    history=history, warmup_bars=n_bars, time_of_day="off",
                                    warehouse=warehouse, checkpoint_s=3600)

            stage = stage_()
            if "classifier" in detectors:
                from tickwise.anomaly.learned import Training, trained

                trained(Training())  # from the model cache, or its first fit: not timed
            try:
                t0 = time.perf_counter()
                stage.on_bars(new)
                first_call_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                state = stage.checkpoint()
                export_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                warehouse.commit({"anomaly_state": state.to_arrow()})
                commit_s = time.perf_counter() - t0
            finally:
                stage.close()
            restarted = stage_()
            try:
                t0 = time.perf_counter()
                restarted.on_bars(after)
                restart_s = time.perf_counter() - t0
                assert restarted.restored_series == n_symbols and restarted.warmed_bars == 0
            finally:
                restarted.close()
        finally:
            warehouse.close()
    return {"symbols": n_symbols, "stored_bars_per_symbol": n_bars, "detectors": ",".join(detectors),
            "read_s": round(read_s, 2), "read_each_s": round(each_s, 2), "first_call_s": round(first_call_s, 2),
            "ms_per_warm_up_step": round((first_call_s - read_s) * 1000 / n_bars, 2),
            "state_mb": round(sum(len(b) for b in state["state"].to_list()) / 1e6, 1),
            "save_export_s": round(export_s, 2), "save_commit_s": round(commit_s, 2),
            "restart_with_saved_state_s": round(restart_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--bars", type=int, default=2100, help="stored bars per symbol (the default warm-up)")
    parser.add_argument("--detectors", default="divergence,classifier,iforest,stale",
                        help="comma-separated; one row per detector, then all together")
    parser.add_argument("--quick", action="store_true", help="100 symbols")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n_symbols = 100 if args.quick else args.symbols
    names = tuple(d.strip() for d in args.detectors.split(",") if d.strip())
    rows = [run(n_symbols, args.bars, (d,)) for d in names]
    if len(names) > 1:
        rows.append(run(n_symbols, args.bars, names))
    print(f"{'detectors':<34} {'symbols':>7} {'bars each':>9} {'read s':>7} {'(one per series)':>16} "
          f"{'first call s':>12} {'ms / step':>9} {'state MB':>8} {'save s':>13} {'restart s':>9}")
    for r in rows:
        print(f"{r['detectors']:<34} {r['symbols']:>7} {r['stored_bars_per_symbol']:>9} {r['read_s']:>7} "
              f"{r['read_each_s']:>16} {r['first_call_s']:>12} {r['ms_per_warm_up_step']:>9} {r['state_mb']:>8} "
              f"{r['save_export_s']:>6}+{r['save_commit_s']:<6} {r['restart_with_saved_state_s']:>9}")
    print("save s: exporting every series' state + committing it; restart s: the first call of a new "
          "stage that loads the saved state (no warm-up)")
    out = Path("artifacts/benchmarks/bench_warm_start.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
