from __future__ import annotations

import pytest

from tickwise.bus.base import Rebalance
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


def test_redis_renew_keeps_a_busy_member_s_partitions_and_reports_a_lease_it_lost(redis_url: str) -> None:
    import time
    import uuid

    bus = RedisBus(redis_url, partitions=1, lease_ms=300)
    group = f"busy-{uuid.uuid4().hex[:8]}"
    a = bus.consumer("bars.1m", group=group, name="a")
    assert a.rebalance().gained == (0,)
    b = bus.consumer("bars.1m", group=group, name="b")
    for _ in range(10):  # a is busy for a second, three leases long, and renews as it goes
        time.sleep(0.1)
        a.renew()
        assert b.rebalance().gained == ()
    assert a.owned() == (0,)
    time.sleep(0.5)  # a stops renewing: its lease expires and b takes the partition
    assert b.rebalance().gained == (0,)
    a.renew()
    assert a.owned() == ()
    assert a.rebalance() == Rebalance(gained=(), lost=(0,))
    bus.close()


def test_stage_runner_keeps_its_partition_through_a_long_stage_call(redis_url: str) -> None:
    """A stage call longer than a lease (an anomaly warm-up) renews through the runner's
    keepalive; without it another worker takes the partition in the middle of the call."""
    import datetime as dt
    import threading
    import time
    import uuid

    import polars as pl

    from tickwise.codec import encode_table
    from tickwise.pipeline.stage_runner import StageRunner
    from tickwise.pipeline.stages import StageOutput
    from tickwise.store.duckdb import DuckDBWarehouse

    class Slow:
        timeframes = ("1m",)

        def __init__(self, renew: bool) -> None:
            self.name, self.renew = f"slow-{uuid.uuid4().hex[:8]}", renew
            self.keepalive = None

        def on_bars(self, bars: pl.DataFrame) -> StageOutput:
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                time.sleep(0.05)
                if self.renew:
                    self.keepalive()
            return StageOutput()

    bar = pl.DataFrame({"symbol": ["A"], "timeframe": ["1m"], "ts": [dt.datetime(2024, 1, 2, tzinfo=dt.UTC)],
                        "close": [1.0]})
    taken = {}
    for renew in (True, False):
        bus = RedisBus(redis_url, partitions=1, lease_ms=300)
        stage = Slow(renew)
        runner = StageRunner(bus, DuckDBWarehouse(":memory:"), stage)
        runner.renew_every_s = 0.1  # a third of the test's lease, as 1 s is of the default 5 s
        assert runner.consumers[0].rebalance().gained == (0,)
        bus.publish("bars.1m", [encode_table(bar.to_arrow())])
        busy = threading.Thread(target=runner.step, kwargs={"timeout_s": 1.0})
        busy.start()
        other = bus.consumer("bars.1m", group=stage.name, name="other")
        gained: tuple[int, ...] = ()
        while busy.is_alive() and not gained:
            gained = other.rebalance().gained
            time.sleep(0.05)
        busy.join()
        taken[renew] = gained
        bus.close()
    assert taken == {True: (), False: (0,)}


def test_stage_runner_takes_over_unacked_bars_and_tells_both_stages(redis_url: str) -> None:
    """Runner A reads a bar and dies before acking it; B's rebalance takes the partition over,
    feeds B's stage that bar first and calls its ``assigned``; A, when it comes back, hears
    ``revoked``."""
    import datetime as dt
    import time
    import uuid

    import polars as pl

    from tickwise.codec import encode_table
    from tickwise.pipeline.stage_runner import StageRunner
    from tickwise.pipeline.stages import StageOutput
    from tickwise.store.duckdb import DuckDBWarehouse

    class Recording:
        timeframes = ("1m",)

        def __init__(self, name: str) -> None:
            self.name, self.events, self.closes = name, [], []

        def on_bars(self, bars: pl.DataFrame) -> StageOutput:
            self.closes.extend(bars["close"].to_list())
            return StageOutput()

        def assigned(self, timeframe: str) -> None:
            self.events.append(("assigned", timeframe))

        def revoked(self, timeframe: str) -> None:
            self.events.append(("revoked", timeframe))

    bus = RedisBus(redis_url, partitions=1, lease_ms=300)
    group = f"rec-{uuid.uuid4().hex[:8]}"
    a, b = Recording(group), Recording(group)
    runner_a = StageRunner(bus, DuckDBWarehouse(":memory:"), a, name="a")
    runner_b = StageRunner(bus, DuckDBWarehouse(":memory:"), b, name="b")
    runner_a.rebalance()
    runner_b.rebalance()
    assert a.events == [("assigned", "1m")] and b.events == []
    bar = pl.DataFrame({"symbol": ["A"], "timeframe": ["1m"], "ts": [dt.datetime(2024, 1, 2, tzinfo=dt.UTC)],
                        "close": [7.0]})
    bus.publish("bars.1m", [encode_table(bar.to_arrow())])
    assert len(runner_a.consumers[0].poll(max_messages=10, timeout_s=1.0)) == 1  # read, never acked: A dies
    time.sleep(0.5)
    runner_b.rebalance()
    assert b.events == [("assigned", "1m")]
    assert runner_b.step(timeout_s=0.1) == 1 and b.closes == [7.0]
    assert bus.lag("bars.1m", group) == 0
    runner_a.rebalance()  # A is back: its lease is gone
    assert a.events == [("assigned", "1m"), ("revoked", "1m")] and a.closes == []
    bus.close()
