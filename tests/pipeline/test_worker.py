from __future__ import annotations

import threading
import time
from pathlib import Path

import polars as pl

from tickwise.bus.memory import MemoryBus
from tickwise.codec import decode_json
from tickwise.pipeline.ingest import TickPublisher
from tickwise.pipeline.stage_runner import DeadLetterSink
from tickwise.pipeline.validate import TICK_POLARS_SCHEMA
from tickwise.pipeline.worker import PipelineWorker
from tickwise.store.duckdb import DuckDBWarehouse

NS = 1_000_000_000


def ticks(rows: list[tuple[str, int, float, float]]) -> pl.DataFrame:
    return pl.DataFrame([(*r, None) for r in rows], schema=TICK_POLARS_SCHEMA, orient="row")


def wait_until(pred, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_worker_bad_ticks_reach_deadletter_topic_and_table_and_pipeline_keeps_running(tmp_path: Path) -> None:
    bus = MemoryBus(partitions=2)
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    worker = PipelineWorker(bus, wh, timeframes=["1s"], lateness_ms=0, commit_interval_ms=50)
    sink = DeadLetterSink(bus, wh)
    stop = threading.Event()
    threads = [threading.Thread(target=worker.run, args=(stop,), kwargs={"drain": True}),
               threading.Thread(target=sink.run, args=(stop,))]
    for t in threads:
        t.start()
    now = time.time_ns() - 10 * NS
    pub = TickPublisher(bus, source="test")
    pub.publish(ticks([("A", now, 10.0, 1.0), ("A", now + 1, float("nan"), 1.0), ("A", now + 2, -1.0, 1.0),
                       ("A", now + 3, 10.0, -5.0), ("A", now + 4, float("inf"), 1.0)]))
    pub.publish(ticks([("A", now + NS + 1, 11.0, 2.0), ("A", now - 5 * NS, 9.0, 1.0)]))  # the second is late
    try:
        wait_until(lambda: sink.written == 5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
    table = pl.from_arrow(wh.query("SELECT reason, payload FROM deadletter ORDER BY reason"))
    assert table["reason"].to_list() == ["bad_price", "bad_price", "bad_price", "bad_size", "late"]
    assert all('"symbol":"A"' in p for p in table["payload"].to_list())
    topic = [decode_json(m.payload)["reason"] for m in bus.read_latest("deadletter", 10)]
    assert sorted(topic) == sorted(table["reason"].to_list())
    bars = pl.from_arrow(wh.query("SELECT close, trades FROM bars ORDER BY ts"))
    assert bars.rows() == [(10.0, 1), (11.0, 1)]


def test_worker_bar_of_a_quiet_market_closes_by_the_clock(tmp_path: Path) -> None:
    bus = MemoryBus(partitions=1)
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    worker = PipelineWorker(bus, wh, timeframes=["1s"], lateness_ms=200, commit_interval_ms=50, idle_close_ms=300)
    stop = threading.Event()
    t = threading.Thread(target=worker.run, args=(stop,))
    t.start()
    try:
        now = time.time_ns()
        TickPublisher(bus, source="test").publish(ticks([("QUIET", now, 5.0, 1.0)]))
        # no further ticks at all: the worker's clock must still close the bar
        wait_until(lambda: worker.stats.bars == 1, timeout_s=10)
    finally:
        stop.set()
        t.join(timeout=20)
    assert wh.bars("QUIET", "1s").num_rows == 1
