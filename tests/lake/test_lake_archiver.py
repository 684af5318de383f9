"""Live archiving from the bus into the lake, through the in-memory bus (no mocks)."""

from __future__ import annotations

import threading
import time

import polars as pl
import pyarrow as pa

from tickwise.bus.base import DEADLETTER, SIGNALS, TICKS, bars_topic, partition_of
from tickwise.bus.memory import MemoryBus
from tickwise.codec import decode_json, encode_table
from tickwise.lake import Lake
from tickwise.lake.archiver import LakeArchiver
from tickwise.signals.stage import SmaCrossStage

SYMBOLS = ("AAPL", "MSFT", "EUR/USD")


def publish_ticks(bus: MemoryBus, n: int) -> pa.Table:
    table = pa.table({
        "symbol": [SYMBOLS[i % 3] for i in range(n)],
        "ts_event": [1_700_000_000 * 10**9 + i * 10**6 for i in range(n)],
        "price": [100.0 + i % 17 for i in range(n)],
        "size": [1.0 + i % 5 for i in range(n)],
        "id": [f"x{i}" for i in range(n)],
    })
    df = pl.from_arrow(table)
    for (symbol,), part in df.partition_by("symbol", as_dict=True).items():
        for chunk in part.iter_slices(50):
            bus.publish(TICKS, [encode_table(chunk.to_arrow())], partition=partition_of(symbol, bus.partitions))
    return table


def test_archiver_ticks_bars_and_signals_land_in_their_zones(lake: Lake, aapl_bars: pl.DataFrame) -> None:
    bus = MemoryBus(partitions=4, capacity=10_000)
    archiver = LakeArchiver(bus, lake.writer(), timeframes=("1d",), flush_interval_s=0.05)
    ticks = publish_ticks(bus, 600)
    bars = aapl_bars.head(60)
    for chunk in bars.iter_slices(7):
        bus.publish(bars_topic("1d"), [encode_table(chunk.to_arrow())])
    out = SmaCrossStage(timeframes=("1d",)).on_bars(bars)
    bus.publish(SIGNALS, out.topics[SIGNALS])

    stop = threading.Event()
    thread = threading.Thread(target=archiver.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        bus.lag(t, "lake") for t in (TICKS, bars_topic("1d"), SIGNALS)
    ):
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()

    got_ticks = pl.from_arrow(lake.read("ticks"))
    assert got_ticks.sort("ts_event").equals(pl.from_arrow(ticks).sort("ts_event"))
    got_bars = pl.from_arrow(lake.read("bars")).select(bars.columns)
    assert got_bars.equals(bars.sort("ts"))
    got_signals = pl.from_arrow(lake.read("signals")).select(out.tables["signals"].columns)
    assert got_signals.equals(out.tables["signals"].sort("ts"))
    assert archiver.archived == {"ticks": 600, "bars": 60, "signals": 60}


def test_archiver_acks_only_after_the_flush_commits(lake: Lake) -> None:
    bus = MemoryBus(partitions=2, capacity=10_000)
    archiver = LakeArchiver(bus, lake.writer(), timeframes=("1m",), flush_interval_s=3600,
                            flush_rows=10**9)
    publish_ticks(bus, 300)
    while archiver.step(timeout_s=0):
        pass
    assert archiver.writer.pending_rows == 300
    assert bus.lag(TICKS, "lake") == 300 // 50 and not archiver.should_flush()
    assert lake.files("ticks") == []
    # a crash now loses nothing: the entries are still unacked on the bus
    assert archiver.flush() == 300 // 50
    assert bus.lag(TICKS, "lake") == 0
    assert lake.read("ticks").num_rows == 300


def test_archiver_flushes_when_enough_rows_wait(lake: Lake) -> None:
    bus = MemoryBus(partitions=1, capacity=10_000)
    archiver = LakeArchiver(bus, lake.writer(), timeframes=("1m",), flush_interval_s=3600, flush_rows=100)
    publish_ticks(bus, 150)
    archiver.step(timeout_s=0)
    assert archiver.should_flush()


def test_archiver_bad_payload_goes_to_deadletter_and_rest_is_archived(lake: Lake) -> None:
    bus = MemoryBus(partitions=1, capacity=10_000)
    viewer = bus.consumer(DEADLETTER, group="viewer", name="v")
    archiver = LakeArchiver(bus, lake.writer(), timeframes=("1m",))
    bus.publish(SIGNALS, [b"{not json", b'{"symbol": "A", "ts": "2024-01-02T00:00:00Z", "signal": "BUY"}'])
    bus.publish(bars_topic("1m"), [b"not arrow"])
    publish_ticks(bus, 10)
    archiver.step(timeout_s=0)
    archiver.flush()
    dead = [decode_json(m.payload) for m in viewer.poll(max_messages=10, timeout_s=0)]
    assert sorted(d["source"] for d in dead) == ["lake:bars.1m", "lake:signals"]
    assert all(d["reason"].startswith("lake: ") and d["payload"] for d in dead)
    assert lake.read("signals").column("signal").to_pylist() == ["BUY"]
    assert lake.read("ticks").num_rows == 10
    assert bus.lag(SIGNALS, "lake") == 0


def test_archiver_signals_warming_up_keep_declared_column_types(lake: Lake) -> None:
    bus = MemoryBus(partitions=1, capacity=1000)
    archiver = LakeArchiver(bus, lake.writer(), timeframes=("1m",))
    from datetime import UTC, datetime

    bars = pl.DataFrame({"symbol": "A", "timeframe": "1m", "ts": [datetime(2024, 1, 2, tzinfo=UTC)],
                         "close": [1.0], "volume": [5.0]})
    bus.publish(SIGNALS, SmaCrossStage().on_bars(bars).topics[SIGNALS])  # fast/slow are null
    archiver.step(timeout_s=0)
    archiver.flush()
    schema = lake.dataset("signals").schema
    assert [str(schema.field(c).type) for c in ("fast", "slow", "volume_ratio", "ts")] == [
        "double", "double", "double", "timestamp[ns, tz=UTC]"]
