from __future__ import annotations

import pytest

from tickwise.bus.redis import RedisBus

pytestmark = pytest.mark.integration


def test_redis_bus_leases_split_partitions_and_dead_member_entries_are_reclaimed(redis_url: str) -> None:
    bus = RedisBus(redis_url, partitions=4, lease_ms=300)
    a = bus.consumer("ticks", group="g", name="a")
    a.rebalance()
    assert a.owned() == (0, 1, 2, 3)
    b = bus.consumer("ticks", group="g", name="b")
    b.rebalance()
    assert b.owned() == ()  # all leased; a gives up its extra share at its next rebalance
    a.rebalance()
    assert len(a.owned()) == 2
    b.rebalance()
    assert sorted(a.owned() + b.owned()) == [0, 1, 2, 3]
    for p in range(4):
        bus.publish("ticks", [f"p{p}-1".encode(), f"p{p}-2".encode()], partition=p)
    read_by_a = a.poll(max_messages=100, timeout_s=0.5)
    assert {m.partition for m in read_by_a} == set(a.owned())
    # a dies: no ack, no release; its leases expire
    import time

    time.sleep(0.5)
    b.rebalance()
    taken = sorted({m.partition for m in read_by_a})
    assert b.owned() == (0, 1, 2, 3)
    reclaimed = [m for p in taken for m in b.reclaim(p)]
    assert sorted(m.payload for m in reclaimed) == sorted(m.payload for m in read_by_a)
    b.ack(reclaimed)
    assert bus.lag("ticks", "g") == 4  # b's own partitions: published, not yet read
    bus.close()


def test_redis_bus_read_latest_and_trim(redis_url: str) -> None:
    bus = RedisBus(redis_url, partitions=1)
    c = bus.consumer("bars.1m", group="g", name="x")
    c.rebalance()
    bus.publish("bars.1m", [str(i).encode() for i in range(10)])
    assert [m.payload for m in bus.read_latest("bars.1m", 3)] == [b"7", b"8", b"9"]
    msgs = c.poll(max_messages=100, timeout_s=0.5)
    c.ack(msgs)
    bus.trim_acked("bars.1m", 0)
    assert bus.lag("bars.1m", "g") == 0
    bus.close()
