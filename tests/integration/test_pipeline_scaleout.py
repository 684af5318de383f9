"""The pipeline on Redis Streams + PostgreSQL: crash and restart, redelivery, bursts, sharing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import psycopg
import pytest

from tests.pipeline.test_bars import TFS, run_stream
from tickwise.bus.redis import RedisBus
from tickwise.pipeline.ingest import TickPublisher
from tickwise.pipeline.worker import PipelineWorker
from tickwise.sources.simulator import NS, Simulator
from tickwise.store.postgres import PostgresWarehouse

pytestmark = pytest.mark.integration

PARTITIONS = 4


# aligned to 5 minutes, so a stream of 300 s ends where every window ends, and the
# worker's clock closes the last windows within a second of going quiet
START_NS = 1_700_000_100 * NS


def make_ticks(seconds: int = 300, rate: float = 3000.0) -> pl.DataFrame:
    sim = Simulator(["AAPL", "MSFT", "SPY", "NIFTY50", "USDINR", "TSLA"], tick_rate=rate, seed=11,
                    start_ns=START_NS)
    return pl.concat([sim.generate(10 * NS) for _ in range(seconds // 10)])


def reference_bars(ticks: pl.DataFrame) -> pl.DataFrame:
    bars, rejected = run_stream(ticks, [50_000] * (ticks.height // 50_000), lateness_ms=1000)
    assert rejected.height == 0
    return bars


def stored_bars(url: str) -> pl.DataFrame:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT symbol, timeframe, ts, open, high, low, close, volume, trades, vwap FROM bars"
        ).fetchall()
    frame = pl.DataFrame(rows, schema=["symbol", "timeframe", "ts", "open", "high", "low", "close", "volume",
                                       "trades", "vwap"], orient="row")
    return frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns")).sort(
        "timeframe", "symbol", "ts")


def count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(sql).fetchone()[0])  # type: ignore[index]


def wait_for(predicate, timeout_s: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def assert_same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    cols = ["symbol", "timeframe", "ts", "open", "high", "low", "close", "volume", "trades"]
    assert a.height == b.height
    assert a.select(cols).equals(b.select(cols))
    assert (a["vwap"] - b["vwap"]).abs().max() < 1e-9 * b["vwap"].abs().max()


def worker_env(redis_url: str, postgres_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "TICKWISE_BUS": redis_url,
        "TICKWISE_WAREHOUSE": postgres_url,
        "TICKWISE_PARTITIONS": str(PARTITIONS),
        "TICKWISE_TIMEFRAMES": ",".join(TFS),
        "TICKWISE_LATENESS_MS": "1000",
        "TICKWISE_IDLE_CLOSE_MS": "1000",
        "TICKWISE_COMMIT_INTERVAL_MS": "100",
    }


def start_worker(env: dict[str, str], name: str, log_dir: Path) -> subprocess.Popen:
    with open(log_dir / f"worker-{name}.log", "w") as log:
        return subprocess.Popen([sys.executable, "-m", "tickwise.cli", "worker", "--name", name], env=env,
                                stdout=subprocess.DEVNULL, stderr=log)


def test_worker_killed_mid_stream_and_restarted_gives_same_bars(redis_url: str, postgres_url: str,
                                                                tmp_path: Path) -> None:
    ticks = make_ticks()
    expected = reference_bars(ticks)
    bus = RedisBus(redis_url, partitions=PARTITIONS)
    publisher = TickPublisher(bus, source="test", max_batch=500)
    chunk_ns = 10 * NS
    starts = range(START_NS, START_NS + 300 * NS, chunk_ns)
    fed = threading.Event()

    def feed() -> None:  # a live stream: 10 s of event time every 0.2 s of wall time
        for start in starts:
            publisher.publish(ticks.filter((pl.col("ts_event") >= start) & (pl.col("ts_event") < start + chunk_ns)))
            time.sleep(0.2)
        fed.set()

    env = worker_env(redis_url, postgres_url)
    PostgresWarehouse(postgres_url).close()  # create the tables
    feeder = threading.Thread(target=feed)
    feeder.start()
    first = start_worker(env, "w1", tmp_path)
    try:
        wait_for(lambda: first.poll() is not None or count(postgres_url, "SELECT count(*) FROM bars") > 100,
                 what="the first bars")
        assert first.poll() is None, (tmp_path / "worker-w1.log").read_text()
        assert not fed.is_set(), "the stream ended before the worker could be killed"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    second = start_worker(env, "w2", tmp_path)
    try:
        feeder.join(timeout=60)
        wait_for(lambda: count(postgres_url, "SELECT count(*) FROM bars") >= expected.height,
                 what="all bars after the restart")
        time.sleep(1.5)  # anything doubled or extra would show up now
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert publisher.published == ticks.height
    assert bus.lag("ticks", "pipeline") == 0
    assert count(postgres_url, "SELECT count(*) FROM deadletter") == 0
    assert_same(stored_bars(postgres_url), expected)
    bus.close()


def run_worker_until(bus_url: str, pg_url: str, expected_rows: int, *, name: str = "t1",
                     extra: list[PipelineWorker] | None = None) -> list[PipelineWorker]:
    stop = threading.Event()
    workers = [PipelineWorker(RedisBus(bus_url, partitions=PARTITIONS), PostgresWarehouse(pg_url), timeframes=TFS,
                              lateness_ms=1000, name=n, commit_interval_ms=100, idle_close_ms=1000)
               for n in ([name] if extra is None else [name, *[f"{name}-{i}" for i in range(len(extra))]])]
    for _ in range(2):  # every member joins before any starts, so the split is deterministic
        for w in workers:
            w._rebalance()
    threads = [threading.Thread(target=w.run, args=(stop,)) for w in workers]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: count(pg_url, "SELECT count(*) FROM bars") >= expected_rows, what="all bars")
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    return workers


def test_same_ticks_delivered_twice_give_same_bars(redis_url: str, postgres_url: str) -> None:
    ticks = make_ticks(rate=1000.0)
    expected = reference_bars(ticks)
    bus = RedisBus(redis_url, partitions=PARTITIONS)
    pub = TickPublisher(bus, source="test", max_batch=1000)
    pub.publish(ticks)
    pub.publish(ticks)  # the whole stream again, as an at-least-once feed might
    (w,) = run_worker_until(redis_url, postgres_url, expected.height)
    assert w.stats.ticks == ticks.height
    assert w.stats.deadletters == ticks.height  # every repeat was caught (duplicate or late)
    assert_same(stored_bars(postgres_url), expected)


def test_burst_of_ten_times_the_rate_is_buffered_and_fully_processed(redis_url: str, postgres_url: str) -> None:
    normal = make_ticks(rate=1000.0)
    sim = Simulator(["AAPL", "MSFT"], tick_rate=10_000.0, seed=5, start_ns=START_NS + 240 * NS)
    burst = sim.generate(60 * NS).with_columns(pl.concat_str(pl.lit("burst-"), "id").alias("id"))
    # the last minute carries ten times the normal rate on top of the normal flow
    ticks = pl.concat([normal, burst]).sort("ts_event", maintain_order=True)
    expected = reference_bars(ticks)
    bus = RedisBus(redis_url, partitions=PARTITIONS)
    TickPublisher(bus, source="test", max_batch=500).publish(ticks)
    (w,) = run_worker_until(redis_url, postgres_url, expected.height)
    assert w.stats.ticks == ticks.height and w.stats.deadletters == 0
    assert_same(stored_bars(postgres_url), expected)


def test_two_workers_share_partitions_without_writing_a_bar_twice(redis_url: str, postgres_url: str) -> None:
    ticks = make_ticks(rate=1000.0)
    expected = reference_bars(ticks)
    bus = RedisBus(redis_url, partitions=PARTITIONS)
    TickPublisher(bus, source="test", max_batch=500).publish(ticks)
    workers = run_worker_until(redis_url, postgres_url, expected.height, extra=[None])  # type: ignore[list-item]
    # each worker processed its own partitions' ticks; together exactly every tick once
    assert sum(w.stats.ticks for w in workers) == ticks.height
    assert all(w.stats.ticks > 0 for w in workers)
    assert sum(w.stats.bars for w in workers) == expected.height
    assert_same(stored_bars(postgres_url), expected)


def test_worker_with_analytics_writes_signals_for_every_bar_on_postgres(redis_url: str, postgres_url: str,
                                                                        tmp_path: Path) -> None:
    ticks = make_ticks(seconds=60, rate=500.0)
    bus = RedisBus(redis_url, partitions=PARTITIONS)
    TickPublisher(bus, source="test", max_batch=500).publish(ticks)
    env = {**worker_env(redis_url, postgres_url), "TICKWISE_TIMEFRAMES": "1s", "TICKWISE_ANOMALY_DETECTORS": "zscore"}
    PostgresWarehouse(postgres_url).close()
    with open(tmp_path / "worker.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tickwise.cli", "worker", "--name", "a1", "--analytics"],
                                env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        bars_sql = "SELECT count(*) FROM bars WHERE timeframe = '1s'"
        n_bars = reference_bars(ticks).filter(pl.col("timeframe") == "1s").height
        # every window closed (the last ones by the worker's clock) and every bar judged
        wait_for(lambda: proc.poll() is not None or (
            count(postgres_url, bars_sql) == n_bars
            and count(postgres_url, "SELECT count(*) FROM signals WHERE rule = 'sma_cross'") == n_bars),
            what="a signal row for every bar")
        assert proc.poll() is None, (tmp_path / "worker.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    with psycopg.connect(postgres_url) as conn:
        missing = conn.execute(
            "SELECT count(*) FROM bars b LEFT JOIN signals s ON s.symbol = b.symbol AND s.ts = b.ts "
            "AND s.timeframe = b.timeframe AND s.rule = 'sma_cross' WHERE b.timeframe = '1s' AND s.ts IS NULL"
        ).fetchone()[0]  # type: ignore[index]
    assert missing == 0
