"""End-to-end pipeline throughput and bar latency.

(a) simulator → memory bus → worker → DuckDB, producer and worker running together;
(b) ticks already in Redis Streams → one worker → PostgreSQL.

Bar latency: from the moment the watermark passes a window's end (the worker finds the
bar closed) to the bar being committed, p50/p99 over commits.

    .venv/bin/python benchmarks/bench_pipeline.py [--quick] [--skip-redis]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import report

from tickwise.bus.memory import MemoryBus
from tickwise.pipeline.ingest import TickPublisher
from tickwise.pipeline.worker import PipelineWorker
from tickwise.sources.simulator import NS, Simulator
from tickwise.store.duckdb import DuckDBWarehouse

TFS = ["1s", "1m", "5m"]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1000) if values else float("nan")


def run_memory(n_ticks: int, symbols: int) -> dict[str, object]:
    bus = MemoryBus(partitions=1, capacity=256)  # as `tickwise up` on memory://
    wh = DuckDBWarehouse(str(Path(tempfile.mkdtemp()) / "bench.duckdb"))
    sim = Simulator([f"S{i:03d}" for i in range(symbols)], tick_rate=1_000_000, seed=1,
                    start_ns=time.time_ns() - 3600 * NS)
    frames = []
    while sum(f.height for f in frames) < n_ticks:
        frames.append(sim.generate(NS // 10))
    total = sum(f.height for f in frames)
    pub = TickPublisher(bus, source="bench", max_batch=20_000)
    worker = PipelineWorker(bus, wh, timeframes=TFS, lateness_ms=1000, commit_interval_ms=100, name="bench")
    stop = threading.Event()
    t = threading.Thread(target=worker.run, args=(stop,))
    t.start()
    t0 = time.perf_counter()
    for f in frames:
        pub.publish(f)
    while bus.lag("ticks", "pipeline") > 0:
        time.sleep(0.001)
    elapsed = time.perf_counter() - t0
    stop.set()
    t.join()
    return {"path": "(a) sim → memory bus → DuckDB", "symbols": symbols, "ticks": total,
            "seconds": elapsed, "ticks_per_s": total / elapsed, "bars": worker.stats.bars,
            "bar_latency_p50_ms": pct(worker.stats.latencies_s, 50),
            "bar_latency_p99_ms": pct(worker.stats.latencies_s, 99)}


def run_paced(rate: float, seconds: float, symbols: int) -> dict[str, object]:
    """Steady state: the simulator on the wall clock at ``rate`` ticks/s, as in `tickwise up`."""
    from tickwise.sources.streams import simulate_live

    bus = MemoryBus(partitions=1, capacity=256)
    wh = DuckDBWarehouse(str(Path(tempfile.mkdtemp()) / "bench.duckdb"))
    sim = Simulator([f"S{i:03d}" for i in range(symbols)], tick_rate=rate, seed=2)
    pub = TickPublisher(bus, source="bench")
    worker = PipelineWorker(bus, wh, timeframes=TFS, lateness_ms=200, commit_interval_ms=100, name="bench")
    stop, stop_src = threading.Event(), threading.Event()
    t = threading.Thread(target=worker.run, args=(stop,))
    t.start()
    t0 = time.perf_counter()
    warm = True
    for frame in simulate_live(sim, stop_src, interval_s=0.02):
        pub.publish(frame)
        if warm and time.perf_counter() - t0 >= 3.0:
            worker.stats.latencies_s.clear()  # first commits create files and caches
            warm = False
        if time.perf_counter() - t0 >= seconds + 3.0:
            break
    while bus.lag("ticks", "pipeline") > 0:
        time.sleep(0.001)
    stop.set()
    t.join()
    return {"path": f"(c) sim paced at {rate:,.0f} ticks/s → memory bus → DuckDB", "symbols": symbols,
            "ticks": pub.published, "seconds": seconds, "ticks_per_s": pub.published / (time.perf_counter() - t0),
            "bars": worker.stats.bars, "bar_latency_p50_ms": pct(worker.stats.latencies_s, 50),
            "bar_latency_p99_ms": pct(worker.stats.latencies_s, 99)}


def run_redis(n_ticks: int, symbols: int, redis_url: str, pg_admin: str) -> dict[str, object]:
    import psycopg

    from tickwise.bus.redis import RedisBus
    from tickwise.store.postgres import PostgresWarehouse

    db = f"tw_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    url = pg_admin.rsplit("/", 1)[0] + f"/{db}"
    bus = RedisBus(redis_url, partitions=8, prefix=f"bench{uuid.uuid4().hex[:6]}")
    try:
        sim = Simulator([f"S{i:03d}" for i in range(symbols)], tick_rate=1_000_000, seed=1,
                        start_ns=time.time_ns() - 3600 * NS)
        pub = TickPublisher(bus, source="bench", max_batch=2_000)
        wh = PostgresWarehouse(url)
        worker = PipelineWorker(bus, wh, timeframes=TFS, lateness_ms=1000, commit_interval_ms=100,
                                name="bench", poll_max=512)
        t_pub = time.perf_counter()
        total = 0
        while total < n_ticks:
            total += pub.publish(sim.generate(NS // 10))
        publish_s = time.perf_counter() - t_pub
        stop = threading.Event()
        t = threading.Thread(target=worker.run, args=(stop,))
        t0 = time.perf_counter()
        t.start()
        while worker.stats.ticks < total:
            time.sleep(0.005)
        elapsed = time.perf_counter() - t0
        stop.set()
        t.join()
        wh.close()
        return {"path": "(b) Redis Streams → worker → PostgreSQL", "symbols": symbols, "ticks": total,
                "seconds": elapsed, "ticks_per_s": total / elapsed, "bars": worker.stats.bars,
                "bar_latency_p50_ms": pct(worker.stats.latencies_s, 50),
                "bar_latency_p99_ms": pct(worker.stats.latencies_s, 99),
                "xadd_ticks_per_s": total / publish_s}
    finally:
        bus.delete_all()
        bus.close()
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2M ticks instead of 10M")
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--skip-redis", action="store_true")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    ap.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    n = 2_000_000 if args.quick else 10_000_000
    rows = [run_memory(n, args.symbols), run_paced(200_000, 10 if args.quick else 30, args.symbols)]
    if not args.skip_redis:
        rows.append(run_redis(n // 2, args.symbols, args.redis, args.postgres))
    report("bench_pipeline", rows, notes="goals: (a) >= 1,000,000 ticks/s, (b) >= 500,000 ticks/s, p99 bar latency < 50 ms")


if __name__ == "__main__":
    main()
