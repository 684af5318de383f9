"""Redis Streams bus: one stream per topic partition, consumer groups, leased partitions.

Keys (prefix ``tw:`` unless configured otherwise):

- ``tw:<topic>:<partition>``: the stream; each entry's field ``d`` is the payload (a batch).
- ``tw:lease:<topic>:<group>:<partition>``: the member owning a partition (``SET NX PX``).
- ``tw:members:<topic>:<group>``: live members, scored by their heartbeat deadline.

A member owns at most ``ceil(partitions / live members)`` partitions; a dead member's leases
expire and others take its partitions, reclaiming its unacked entries with ``XAUTOCLAIM``.
"""

from __future__ import annotations

import contextlib
import math
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from tickwise.bus.base import Bus, Consumer, Message, Rebalance
from tickwise.exceptions import BackendError

T = TypeVar("T")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def connect(url: str) -> redis.Redis:
    """Open a Redis client that retries dropped connections with bounded backoff."""
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=6)
    return redis.Redis.from_url(
        url,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )


def _call(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except RedisError as exc:
        raise BackendError(f"redis {what} failed: {exc}") from exc


class RedisBus(Bus):
    """Topics as Redis Streams.

    Examples
    --------
    >>> bus = RedisBus("redis://127.0.0.1:6379/15", partitions=4)  # doctest: +SKIP
    """

    is_durable = True

    def __init__(
        self,
        url: str,
        *,
        partitions: int = 8,
        max_entries: int = 1_000_000,
        lease_ms: int = 5000,
        prefix: str = "tw",
    ) -> None:
        self.url = url
        self.partitions = partitions
        self.max_entries = max_entries
        self.lease_ms = lease_ms
        self.prefix = prefix
        self.client = connect(url)
        _call("ping", self.client.ping)
        self._renew = self.client.register_script(_RENEW)
        self._release = self.client.register_script(_RELEASE)

    def stream(self, topic: str, partition: int) -> str:
        return f"{self.prefix}:{topic}:{partition}"

    def publish(self, topic: str, payloads: Sequence[bytes], *, partition: int = 0) -> None:
        if not 0 <= partition < self.topic_partitions(topic):
            raise ValueError(
                f"partition must be in [0, {self.topic_partitions(topic)}) for {topic}, was {partition}"
            )
        key = self.stream(topic, partition)

        def send() -> None:
            pipe = self.client.pipeline(transaction=False)
            for payload in payloads:
                pipe.xadd(key, {"d": payload}, maxlen=self.max_entries, approximate=True)
            pipe.execute()

        _call("XADD", send)

    def consumer(self, topic: str, *, group: str, name: str) -> Consumer:
        for p in range(self.topic_partitions(topic)):
            try:
                self.client.xgroup_create(self.stream(topic, p), group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise BackendError(f"redis XGROUP CREATE failed: {exc}") from exc
        return RedisConsumer(self, topic, group, name)

    def lag(self, topic: str, group: str) -> int:
        total = 0
        for p in range(self.topic_partitions(topic)):
            key = self.stream(topic, p)
            try:
                groups = self.client.xinfo_groups(key)
            except ResponseError:
                continue
            for g in groups:
                if g["name"].decode() == group:
                    total += int(g.get("pending") or 0) + int(g.get("lag") or 0)
        return total

    def read_latest(self, topic: str, count: int, *, partition: int = 0) -> list[Message]:
        rows = _call("XREVRANGE", lambda: self.client.xrevrange(self.stream(topic, partition), count=count))
        return [Message(topic, partition, eid.decode(), fields[b"d"]) for eid, fields in reversed(rows)]

    def trim_acked(self, topic: str, partition: int) -> None:
        """Drop entries every group has acked (keeps Redis memory bounded)."""
        key = self.stream(topic, partition)
        try:
            groups = self.client.xinfo_groups(key)
        except ResponseError:
            return
        floors = []
        for g in groups:
            summary = self.client.xpending(key, g["name"])
            if summary["pending"]:
                floors.append(summary["min"].decode())
            else:
                last = g["last-delivered-id"].decode()
                ms, _, seq = last.partition("-")
                floors.append(f"{ms}-{int(seq) + 1}")
        if floors:
            floor = min(floors, key=lambda e: tuple(int(x) for x in e.split("-")))
            self.client.xtrim(key, minid=floor, approximate=True)

    def delete_all(self) -> None:
        """Delete every key of this bus (tests and `tickwise reset`)."""
        keys = list(self.client.scan_iter(match=f"{self.prefix}:*", count=1000))
        if keys:
            self.client.delete(*keys)

    def close(self) -> None:
        self.client.close()


class RedisConsumer(Consumer):
    def __init__(self, bus: RedisBus, topic: str, group: str, name: str) -> None:
        self.bus, self.topic, self.group, self.name = bus, topic, group, name
        self._owned: list[int] = []
        self._dropped: list[int] = []  # leases `renew` could not keep, reported by the next rebalance
        self._members = f"{bus.prefix}:members:{topic}:{group}"
        self._last_trim = 0.0

    def _lease(self, p: int) -> str:
        return f"{self.bus.prefix}:lease:{self.topic}:{self.group}:{p}"

    def _heartbeat(self) -> int:
        """Mark this member alive for one lease; return how many members are alive."""
        client, ttl = self.bus.client, self.bus.lease_ms
        now_ms = int(time.time() * 1000)

        def heartbeat() -> int:
            pipe = client.pipeline(transaction=False)
            pipe.zadd(self._members, {self.name: now_ms + ttl})
            pipe.zremrangebyscore(self._members, "-inf", now_ms)
            pipe.zcard(self._members)
            return int(pipe.execute()[2])

        return int(_call("heartbeat", heartbeat))

    def _renew_owned(self) -> list[int]:
        """Renew the lease of every owned partition; drop and return those no longer ours."""
        ttl = self.bus.lease_ms
        lost: list[int] = []
        for p in list(self._owned):
            if not _call("lease renew", lambda p=p: self.bus._renew(keys=[self._lease(p)], args=[self.name, ttl])):
                self._owned.remove(p)
                lost.append(p)
        return lost

    def renew(self) -> None:
        self._heartbeat()
        self._dropped.extend(self._renew_owned())

    def rebalance(self) -> Rebalance:
        client, ttl = self.bus.client, self.bus.lease_ms
        n = self.bus.topic_partitions(self.topic)
        members = self._heartbeat()
        target = math.ceil(n / max(members, 1))
        lost = [*self._dropped, *self._renew_owned()]
        self._dropped = []
        while len(self._owned) > target:
            p = self._owned.pop()
            _call("lease release", lambda p=p: self.bus._release(keys=[self._lease(p)], args=[self.name]))
            lost.append(p)
        gained: list[int] = []
        start = zlib.crc32(self.name.encode()) % n
        for i in range(n):
            if len(self._owned) >= target:
                break
            p = (start + i) % n
            if p in self._owned:
                continue
            if _call("lease take", lambda p=p: client.set(self._lease(p), self.name, nx=True, px=ttl)):
                self._owned.append(p)
                gained.append(p)
        self._owned.sort()
        return Rebalance(tuple(gained), tuple(lost))

    def owned(self) -> tuple[int, ...]:
        return tuple(self._owned)

    def _messages(self, p: int, rows: Any) -> list[Message]:
        return [
            Message(self.topic, p, eid.decode(), fields[b"d"])
            for eid, fields in rows
            if fields  # a deleted entry comes back without fields
        ]

    def reclaim(self, partition: int) -> list[Message]:
        key = self.bus.stream(self.topic, partition)
        out: list[Message] = []
        cursor = "0-0"
        while True:
            reply = _call(
                "XAUTOCLAIM",
                lambda c=cursor: self.bus.client.xautoclaim(key, self.group, self.name, 0, start_id=c, count=500),
            )
            cursor_raw, rows = reply[0], reply[1]
            out.extend(self._messages(partition, rows))
            cursor = cursor_raw.decode() if isinstance(cursor_raw, bytes) else str(cursor_raw)
            if cursor == "0-0":
                break
        out.sort(key=lambda m: m.position)
        return out

    def poll(self, *, max_messages: int, timeout_s: float) -> list[Message]:
        if not self._owned:
            time.sleep(min(timeout_s, 0.2))
            return []
        streams = {self.bus.stream(self.topic, p): ">" for p in self._owned}
        block = max(int(timeout_s * 1000), 1) if timeout_s > 0 else None
        reply = _call(
            "XREADGROUP",
            lambda: self.bus.client.xreadgroup(self.group, self.name, streams, count=max_messages, block=block),
        )
        out: list[Message] = []
        for key, rows in reply or []:
            p = int(key.decode().rsplit(":", 1)[1])
            out.extend(self._messages(p, rows))
        return out

    def ack(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        by_stream: dict[str, list[str]] = {}
        for m in messages:
            by_stream.setdefault(self.bus.stream(self.topic, m.partition), []).append(m.id)

        def send() -> None:
            pipe = self.bus.client.pipeline(transaction=False)
            for key, ids in by_stream.items():
                pipe.xack(key, self.group, *ids)
            pipe.execute()

        _call("XACK", send)
        now = time.monotonic()
        if now - self._last_trim > 1.0:
            self._last_trim = now
            for m_partition in {m.partition for m in messages}:
                self.bus.trim_acked(self.topic, m_partition)

    def close(self) -> None:
        # best effort: leases and membership expire by themselves
        with contextlib.suppress(RedisError):
            for p in self._owned:
                self.bus._release(keys=[self._lease(p)], args=[self.name])
            self.bus.client.zrem(self._members, self.name)
        self._owned = []
