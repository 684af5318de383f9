from __future__ import annotations

import threading
import time

from tickwise.bus.memory import MemoryBus


def test_memory_bus_producer_waits_when_full_and_nothing_is_dropped() -> None:
    bus = MemoryBus(partitions=1, capacity=4)
    consumer = bus.consumer("bars.1m", group="g", name="a")
    consumer.rebalance()
    done = threading.Event()

    def produce() -> None:
        bus.publish("bars.1m", [str(i).encode() for i in range(50)])
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    time.sleep(0.2)
    assert not done.is_set()  # blocked: the group has not acked
    assert bus.lag("bars.1m", "g") == 4
    got = []
    while len(got) < 50:
        msgs = consumer.poll(max_messages=3, timeout_s=1.0)
        got.extend(m.payload for m in msgs)
        consumer.ack(msgs)
    assert got == [str(i).encode() for i in range(50)]
    assert done.wait(2)


def test_memory_bus_each_group_reads_everything() -> None:
    bus = MemoryBus(partitions=1, capacity=100)
    a = bus.consumer("t", group="one", name="x")
    b = bus.consumer("t", group="two", name="x")
    bus.publish("t", [b"1", b"2"])
    assert [m.payload for m in a.poll(max_messages=10, timeout_s=0)] == [b"1", b"2"]
    assert [m.payload for m in b.poll(max_messages=10, timeout_s=0)] == [b"1", b"2"]


def test_memory_bus_members_split_partitions_and_unacked_entries_are_reclaimed() -> None:
    bus = MemoryBus(partitions=4, capacity=100)
    a = bus.consumer("ticks", group="g", name="a")
    b = bus.consumer("ticks", group="g", name="b")
    a.rebalance()
    b.rebalance()
    assert sorted(a.owned() + b.owned()) == [0, 1, 2, 3] and not set(a.owned()) & set(b.owned())
    for p in range(4):
        bus.publish("ticks", [f"p{p}".encode()], partition=p)
    read_by_a = a.poll(max_messages=10, timeout_s=0)
    assert {m.partition for m in read_by_a} == set(a.owned())
    a.close()  # a dies without acking
    change = b.rebalance()
    assert sorted(change.gained) == sorted(m.partition for m in read_by_a)
    reclaimed = [m for p in change.gained for m in b.reclaim(p)]
    assert sorted(m.payload for m in reclaimed) == sorted(m.payload for m in read_by_a)


def test_memory_bus_topic_without_group_keeps_newest_entries() -> None:
    bus = MemoryBus(partitions=1, capacity=3, retain=3)
    bus.publish("signals", [b"1", b"2", b"3", b"4", b"5"])
    assert [m.payload for m in bus.read_latest("signals", 10)] == [b"3", b"4", b"5"]


def test_memory_bus_acked_entries_stay_visible_to_viewers_except_ticks() -> None:
    bus = MemoryBus(partitions=1, capacity=10, retain=2)
    for topic in ("bars.1m", "ticks"):
        c = bus.consumer(topic, group="g", name="x")
        bus.publish(topic, [b"1", b"2", b"3"])
        c.ack(c.poll(max_messages=10, timeout_s=0))
    assert [m.payload for m in bus.read_latest("bars.1m", 10)] == [b"2", b"3"]
    assert bus.read_latest("ticks", 10) == []
