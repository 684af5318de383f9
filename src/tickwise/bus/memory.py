"""An in-process bus: bounded logs per partition, one cursor per consumer group.

Producers wait while the slowest group is ``capacity`` entries behind on a partition, so
nothing is dropped. Entries every group has acked are dropped, except the newest
``retain`` of each topic other than ``ticks``, which stay for viewers such as the API's
live stream (`Bus.read_latest`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tickwise.bus.base import TICKS, Bus, Consumer, Message, Rebalance


def _entry_id(offset: int) -> str:
    # ids start at 1 so that "0-0" can mean "nothing read yet", as on Redis
    return f"{offset + 1}-0"


@dataclass
class _GroupCursor:
    read: int
    pending: dict[int, bytes] = field(default_factory=dict)

    def floor(self) -> int:
        return min(self.pending) if self.pending else self.read


@dataclass
class _Log:
    base: int = 0
    entries: list[bytes] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.base + len(self.entries)


class MemoryBus(Bus):
    """A bounded, thread-safe, in-process bus.

    Examples
    --------
    >>> bus = MemoryBus(partitions=2, capacity=10)
    >>> c = bus.consumer("bars.1m", group="g", name="a")
    >>> bus.publish("bars.1m", [b"x", b"y"])
    >>> [m.payload for m in c.poll(max_messages=10, timeout_s=0)]
    [b'x', b'y']
    """

    is_durable = False

    def __init__(self, *, partitions: int = 8, capacity: int = 1024, url: str = "memory://",
                 retain: int | None = None) -> None:
        self.url = url
        self.partitions = partitions
        self.capacity = capacity
        #: entries kept after every group has acked them, for `read_latest` (not on ``ticks``)
        self.retain = min(capacity, 256) if retain is None else retain
        self._cond = threading.Condition()
        self._logs: dict[tuple[str, int], _Log] = {}
        # topic -> group -> partition -> cursor
        self._groups: dict[str, dict[str, dict[int, _GroupCursor]]] = {}
        # topic -> group -> member names
        self._members: dict[str, dict[str, list[str]]] = {}
        self._closed = False

    def _log(self, topic: str, partition: int) -> _Log:
        key = (topic, partition)
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _Log()
        return log

    def _floor(self, topic: str, partition: int) -> int | None:
        groups = self._groups.get(topic)
        if not groups:
            return None
        return min(g[partition].floor() for g in groups.values())

    def _trim(self, topic: str, partition: int) -> None:
        log = self._log(topic, partition)
        floor = self._floor(topic, partition)
        # keep a tail for viewers (read_latest) on every topic but the high-volume ticks
        retained = log.end - (0 if topic == TICKS else self.retain)
        floor = retained if floor is None else min(floor, retained)
        drop = floor - log.base
        if drop > 0:
            del log.entries[:drop]
            log.base += drop

    def publish(self, topic: str, payloads: Sequence[bytes], *, partition: int = 0) -> None:
        if not 0 <= partition < self.topic_partitions(topic):
            raise ValueError(
                f"partition must be in [0, {self.topic_partitions(topic)}) for {topic}, was {partition}"
            )
        with self._cond:
            log = self._log(topic, partition)
            for payload in payloads:
                while True:
                    floor = self._floor(topic, partition)
                    if floor is None or log.end - floor < self.capacity or self._closed:
                        break
                    self._cond.notify_all()  # wake consumers for what is already appended
                    self._cond.wait(0.1)
                log.entries.append(payload)
                self._trim(topic, partition)
            self._cond.notify_all()

    def consumer(self, topic: str, *, group: str, name: str) -> Consumer:
        with self._cond:
            groups = self._groups.setdefault(topic, {})
            if group not in groups:
                groups[group] = {
                    p: _GroupCursor(read=self._log(topic, p).base)
                    for p in range(self.topic_partitions(topic))
                }
            members = self._members.setdefault(topic, {}).setdefault(group, [])
            if name in members:
                raise ValueError(f"member name must be unique in group {group!r}, was {name!r}")
            members.append(name)
        return _MemoryConsumer(self, topic, group, name)

    def lag(self, topic: str, group: str) -> int:
        with self._cond:
            cursors = self._groups.get(topic, {}).get(group)
            if cursors is None:
                return 0
            return sum(self._log(topic, p).end - c.floor() for p, c in cursors.items())

    def read_latest(self, topic: str, count: int, *, partition: int = 0) -> list[Message]:
        with self._cond:
            log = self._log(topic, partition)
            start = max(log.base, log.end - count)
            return [
                Message(topic, partition, _entry_id(off), log.entries[off - log.base])
                for off in range(start, log.end)
            ]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _MemoryConsumer(Consumer):
    def __init__(self, bus: MemoryBus, topic: str, group: str, name: str) -> None:
        self.bus, self.topic, self.group, self.name = bus, topic, group, name
        self._owned: tuple[int, ...] = ()

    def _share(self) -> tuple[int, ...]:
        members = sorted(self.bus._members[self.topic][self.group])
        index = members.index(self.name)
        n = self.bus.topic_partitions(self.topic)
        return tuple(p for p in range(n) if p % len(members) == index)

    def renew(self) -> None:
        pass  # no leases: a member keeps its partitions until it closes or a rebalance moves them

    def rebalance(self) -> Rebalance:
        with self.bus._cond:
            share = self._share()
        gained = tuple(p for p in share if p not in self._owned)
        lost = tuple(p for p in self._owned if p not in share)
        self._owned = share
        return Rebalance(gained, lost)

    def owned(self) -> tuple[int, ...]:
        return self._owned

    def reclaim(self, partition: int) -> list[Message]:
        with self.bus._cond:
            cursor = self.bus._groups[self.topic][self.group][partition]
            return [
                Message(self.topic, partition, _entry_id(off), payload)
                for off, payload in sorted(cursor.pending.items())
            ]

    def poll(self, *, max_messages: int, timeout_s: float) -> list[Message]:
        if not self._owned:
            self.rebalance()
        deadline = time.monotonic() + timeout_s
        bus = self.bus
        with bus._cond:
            while True:
                out: list[Message] = []
                cursors = bus._groups[self.topic][self.group]
                for p in self._owned:
                    log, cursor = bus._log(self.topic, p), cursors[p]
                    while cursor.read < log.end and len(out) < max_messages:
                        payload = log.entries[cursor.read - log.base]
                        cursor.pending[cursor.read] = payload
                        out.append(Message(self.topic, p, _entry_id(cursor.read), payload))
                        cursor.read += 1
                if out or bus._closed:
                    return out
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return out
                bus._cond.wait(remaining)

    def ack(self, messages: Sequence[Message]) -> None:
        bus = self.bus
        with bus._cond:
            cursors = bus._groups[self.topic][self.group]
            touched = set()
            for m in messages:
                cursors[m.partition].pending.pop(m.position[0] - 1, None)
                touched.add(m.partition)
            for p in touched:
                bus._trim(self.topic, p)
            bus._cond.notify_all()

    def close(self) -> None:
        with self.bus._cond:
            self.bus._members[self.topic][self.group].remove(self.name)
        self._owned = ()
