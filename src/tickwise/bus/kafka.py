"""Kafka bus: one Kafka topic per bus topic, the broker's consumer groups own partitions.

Mapping onto the bus contract (`tickwise.bus.base`):

- ``ticks`` is a Kafka topic with ``partitions`` partitions; every other topic has one.
  Topics are created with the admin API when first used (names with dots are fine).
  Producers pick the partition explicitly; there is no message key.
- An entry's id is ``"<offset + 1>-0"``, so ``"0-0"`` still means "nothing read" and
  `Message.position` orders entries of a partition as on Redis.
- Partition ownership is Kafka's group assignment (cooperative-sticky). The assignment
  callbacks run inside ``consume``; `KafkaConsumer.rebalance` reports what they changed
  since its last call, keeping any entries that ``consume`` returned for the next `poll`.
- Offsets are committed only by `KafkaConsumer.ack` (``enable.auto.commit`` is off), one
  past the highest acked entry of each partition. `KafkaConsumer.reclaim` rewinds a
  partition to its committed offset: the entries a dead member read without acking come
  again through `poll`, and the pipeline skips those already inside its checkpoint.
- The producer is idempotent and sends one payload per record batch: payloads are
  batches already, and some Kafka-protocol brokers (Tansu 0.6) report a batch's first
  offset + 1 as the high watermark, which would make `KafkaBus.lag` too small.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlparse

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from tickwise.bus.base import TICKS, Bus, Message, Rebalance
from tickwise.bus.base import Consumer as BusConsumer
from tickwise.exceptions import BackendError, ConfigError

log = logging.getLogger(__name__)
_client_log = logging.getLogger(f"{__name__}.librdkafka")

T = TypeVar("T")

# commit failures that only mean "this member no longer owns the partition": the next
# owner reads the entries again from the last committed offset
_OWNERSHIP_ERRORS = frozenset({
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._NO_OFFSET,
})


def bootstrap_servers(url: str) -> str:
    """Return the ``bootstrap.servers`` of a ``kafka://`` URL (port 9092 when absent).

    Examples
    --------
    >>> bootstrap_servers("kafka://127.0.0.1:19092")
    '127.0.0.1:19092'
    >>> bootstrap_servers("kafka://broker")
    'broker:9092'
    """
    parsed = urlparse(url)
    if parsed.scheme != "kafka" or not parsed.netloc:
        raise ConfigError(f"setting TICKWISE_BUS must be a URL like kafka://127.0.0.1:9092, was {url!r}")
    hosts = [h if ":" in h else f"{h}:9092" for h in parsed.netloc.split(",") if h]
    return ",".join(hosts)


def _call(what: str, fn: Callable[[], T], *, attempts: int = 3) -> T:
    """Run a client call, retrying retriable Kafka errors with bounded backoff."""
    for attempt in range(attempts):
        try:
            return fn()
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            retriable = isinstance(err, KafkaError) and err.retriable()
            if not retriable or attempt == attempts - 1:
                raise BackendError(f"kafka {what} failed: {exc}") from exc
            time.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


class KafkaBus(Bus):
    """Topics as Kafka topics, on any broker that speaks the Kafka protocol.

    Parameters
    ----------
    url
        ``kafka://HOST:PORT`` (several brokers: ``kafka://h1:9092,h2:9092``).
    partitions
        Partitions of the ``ticks`` topic (must match an existing topic).
    session_timeout_ms
        How long the broker waits for a silent member before giving its partitions away.
    delivery_timeout_s
        How long the producer retries an entry before `publish` raises `BackendError`.
    replication_factor
        Replicas of the topics this bus creates (``-1``: the broker's default).
    connect_timeout_s
        How long to wait for the broker at start-up and for metadata and offset requests.
    client_config
        Extra librdkafka settings for every client (e.g. SASL), applied last.

    Examples
    --------
    >>> bus = KafkaBus("kafka://127.0.0.1:9092", partitions=4)  # doctest: +SKIP
    >>> bus.publish("bars.1m", [b"x"])  # doctest: +SKIP
    >>> [m.payload for m in bus.read_latest("bars.1m", 1)]  # doctest: +SKIP
    [b'x']
    """

    is_durable = True

    def __init__(
        self,
        url: str,
        *,
        partitions: int = 8,
        session_timeout_ms: int = 10_000,
        delivery_timeout_s: float = 30.0,
        replication_factor: int = -1,
        connect_timeout_s: float = 10.0,
        client_config: dict[str, Any] | None = None,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, was {partitions}")
        self.url = url
        self.partitions = partitions
        self.servers = bootstrap_servers(url)
        self.session_timeout_ms = session_timeout_ms
        self.delivery_timeout_s = delivery_timeout_s
        self.replication_factor = replication_factor
        self.timeout_s = connect_timeout_s
        self._extra = dict(client_config or {})
        self._lock = threading.Lock()  # topics, helper clients
        self._publish_lock = threading.Lock()
        self._topics: dict[str, int] = {}
        self._group_clients: dict[str, Consumer] = {}
        self._reader: Consumer | None = None
        self._latest: dict[tuple[str, int], tuple[int, list[Message]]] = {}
        self._last_error: KafkaError | None = None
        self.admin = AdminClient(self.config())
        try:
            self.admin.list_topics(timeout=connect_timeout_s)
        except KafkaException as exc:
            raise BackendError(f"kafka broker at {self.servers} is not reachable: {exc}") from exc
        self.producer = Producer(self.config(
            **{
                "enable.idempotence": True,  # retries never duplicate or reorder entries
                "acks": "all",
                "linger.ms": 5,
                "batch.num.messages": 1,  # one payload per record batch (see the module docstring)
                "message.max.bytes": 16 * 1024 * 1024,
                "message.timeout.ms": int(delivery_timeout_s * 1000),
                "error_cb": self._on_error,
            }
        ))

    def config(self, **extra: Any) -> dict[str, Any]:
        """Return the librdkafka settings shared by this bus's clients, plus ``extra``."""
        return {"bootstrap.servers": self.servers, "logger": _client_log, **extra, **self._extra}

    def _on_error(self, err: KafkaError) -> None:
        self._last_error = err
        log.warning("kafka client error: %s", err)

    # -- topics ----------------------------------------------------------------------

    def ensure_topic(self, topic: str) -> int:
        """Create ``topic`` when missing; return its partition count."""
        known = self._topics.get(topic)
        if known is not None:
            return known
        with self._lock:
            want = self.topic_partitions(topic)
            have = self._partitions_on_broker(topic)
            if have is None:
                futures = self.admin.create_topics(
                    [NewTopic(topic, num_partitions=want, replication_factor=self.replication_factor)],
                    operation_timeout=self.timeout_s,
                )
                try:
                    futures[topic].result(timeout=self.timeout_s + 5)
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise BackendError(f"kafka could not create topic {topic!r}: {exc}") from exc
                deadline = time.monotonic() + self.timeout_s
                while (have := self._partitions_on_broker(topic)) is None:
                    if time.monotonic() > deadline:
                        raise BackendError(f"kafka topic {topic!r} was created but never appeared in metadata")
                    time.sleep(0.05)
            if (topic == TICKS and have != want) or have < want:
                raise ConfigError(
                    f"setting TICKWISE_PARTITIONS must match the {have} partitions of Kafka topic "
                    f"{topic!r}, was {want}"
                )
            self._topics[topic] = have
            return have

    def _exists(self, topic: str) -> bool:
        # a topic seen once stays (this bus never deletes one); ask the broker until then
        return topic in self._topics or self._partitions_on_broker(topic) is not None

    def _partitions_on_broker(self, topic: str) -> int | None:
        # all topics, not one: asking for one topic may create it with the broker's defaults
        meta = _call("metadata", lambda: self.admin.list_topics(timeout=self.timeout_s))
        found = meta.topics.get(topic)
        if found is None or found.error is not None:
            return None
        return len(found.partitions)

    # -- Bus -------------------------------------------------------------------------

    def publish(self, topic: str, payloads: Sequence[bytes], *, partition: int = 0) -> None:
        if not 0 <= partition < self.topic_partitions(topic):
            raise ValueError(
                f"partition must be in [0, {self.topic_partitions(topic)}) for {topic}, was {partition}"
            )
        if not payloads:
            return
        self.ensure_topic(topic)
        failed: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                failed.append(err)

        with self._publish_lock:
            for payload in payloads:
                while True:
                    try:
                        self.producer.produce(topic, value=payload, partition=partition, on_delivery=delivered)
                        break
                    except BufferError:  # the local queue is full: wait for the broker, never drop
                        self.producer.poll(0.05)
                    except KafkaException as exc:
                        raise BackendError(f"kafka publish to {topic}[{partition}] failed: {exc}") from exc
            left = self.producer.flush(self.delivery_timeout_s + 5)
        if failed or left:
            reason = failed[0] if failed else f"{left} entries still queued"
            raise BackendError(
                f"kafka publish to {topic}[{partition}] failed after retries: {reason}"
                + (f" (last client error: {self._last_error})" if self._last_error else "")
            )

    def consumer(self, topic: str, *, group: str, name: str) -> KafkaConsumer:
        self.ensure_topic(topic)
        return KafkaConsumer(self, topic, group, name)

    def _group_client(self, group: str) -> Consumer:
        # a consumer that never subscribes: reads the group's committed offsets, never joins
        client = self._group_clients.get(group)
        if client is None:
            client = self._group_clients[group] = Consumer(
                self.config(**{"group.id": group, "enable.auto.commit": False})
            )
        return client

    def committed(self, topic: str, group: str) -> dict[int, int]:
        """Return the committed offset of each partition (``-1``: nothing committed)."""
        n = self.topic_partitions(topic)
        with self._lock:
            client = self._group_client(group)
            tps = _call(
                "committed offsets",
                lambda: client.committed([TopicPartition(topic, p) for p in range(n)], timeout=self.timeout_s),
            )
        return {tp.partition: tp.offset if tp.offset >= 0 else -1 for tp in tps}

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """Return the ``(low, high)`` offsets of a partition (high: one past the newest)."""
        with self._lock:
            client = self._group_client("tickwise-watermarks")
            return _call(
                "watermarks",
                lambda: client.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=self.timeout_s, cached=False
                ),
            )

    def lag(self, topic: str, group: str) -> int:
        if not self._exists(topic):
            return 0
        total = 0
        for p, offset in self.committed(topic, group).items():
            low, high = self.watermarks(topic, p)
            # nothing committed: the group starts at the oldest entry (auto.offset.reset)
            total += max(high - (offset if offset >= 0 else low), 0)
        return total

    def read_latest(self, topic: str, count: int, *, partition: int = 0) -> list[Message]:
        if count <= 0 or not self._exists(topic):
            return []
        low, high = self.watermarks(topic, partition)
        if high <= low:
            return []
        key = (topic, partition)
        cached_high, cached = self._latest.get(key, (-1, []))
        if cached_high == high and (len(cached) >= count or len(cached) == high - low):
            return cached[-count:]  # nothing new since the last read (viewers ask often)
        with self._lock:
            if self._reader is None:
                self._reader = Consumer(self.config(**{
                    "group.id": f"tickwise-reader-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "fetch.wait.max.ms": 10,
                }))
            reader = self._reader
            out: list[Message] = []
            _call("assign", lambda: reader.assign([TopicPartition(topic, partition, max(low, high - count))]))
            try:
                deadline = time.monotonic() + self.timeout_s
                done = False
                while not done and time.monotonic() < deadline:
                    for m in reader.consume(max(count, 1), 0.2):
                        err = m.error()
                        if err is not None:
                            done = done or err.code() == KafkaError._PARTITION_EOF
                            continue
                        out.append(Message(topic, partition, f"{m.offset() + 1}-0", m.value() or b""))
                        done = done or m.offset() >= high - 1
            finally:
                reader.unassign()
        out = out[-count:]
        if out and out[-1].position[0] == high:
            self._latest[key] = (high, out)
        return out

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(KafkaException):
                self.producer.flush(self.delivery_timeout_s)
            for client in [*self._group_clients.values(), *([self._reader] if self._reader else [])]:
                with contextlib.suppress(KafkaException, RuntimeError):
                    client.close()
            self._group_clients.clear()
            self._reader = None


class KafkaConsumer(BusConsumer):
    """A member of a Kafka consumer group on one topic (see `KafkaBus`).

    Examples
    --------
    >>> c = KafkaBus("kafka://127.0.0.1:9092").consumer("bars.1m", group="g", name="a")  # doctest: +SKIP
    >>> c.rebalance()  # doctest: +SKIP
    Rebalance(gained=(), lost=())
    """

    #: entries `rebalance` may hold for the next `poll`
    max_buffered = 10_000

    def __init__(self, bus: KafkaBus, topic: str, group: str, name: str) -> None:
        self.bus, self.topic, self.group, self.name = bus, topic, group, name
        self._owned: set[int] = set()
        self._reported: set[int] = set()
        self._buffer: list[Message] = []
        self._acked: dict[int, int] = {}  # partition -> highest offset committed by this member
        self._closed = False
        session = bus.session_timeout_ms
        self._consumer = Consumer(bus.config(**{
            "group.id": group,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": session,
            "heartbeat.interval.ms": max(session // 5, 100),
            "error_cb": bus._on_error,
        }))
        _call("subscribe", lambda: self._consumer.subscribe(
            [topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke,
        ))

    # librdkafka runs these inside consume(), on this consumer's thread
    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._owned.update(tp.partition for tp in partitions)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions}
        self._owned -= gone
        self._buffer = [m for m in self._buffer if m.partition not in gone]
        for p in gone:
            self._acked.pop(p, None)

    def _pump(self, max_messages: int, timeout_s: float) -> None:
        try:
            batch = self._consumer.consume(max(max_messages, 1), max(timeout_s, 0.0))
        except KafkaException as exc:
            raise BackendError(f"kafka consume from {self.topic} failed: {exc}") from exc
        for m in batch:
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise BackendError(f"kafka consumer {self.name} on {self.topic} failed: {err}")
                log.warning("kafka consumer %s on %s: %s", self.name, self.topic, err)
                continue
            p = m.partition()
            if p in self._owned:
                self._buffer.append(Message(self.topic, p, f"{m.offset() + 1}-0", m.value() or b""))

    def renew(self) -> None:
        pass  # librdkafka heartbeats from its own thread (a call may run up to max.poll.interval.ms, 5 min)

    def rebalance(self) -> Rebalance:
        # let the group's callbacks run; whatever consume returns waits for the next poll
        self._pump(self.max_buffered - len(self._buffer), 0.01)
        gained = tuple(sorted(self._owned - self._reported))
        lost = tuple(sorted(self._reported - self._owned))
        self._reported = set(self._owned)
        return Rebalance(gained, lost)

    def owned(self) -> tuple[int, ...]:
        return tuple(sorted(self._owned))

    def reclaim(self, partition: int) -> list[Message]:
        """Rewind ``partition`` to its committed offset; its unacked entries come via `poll`."""
        self._buffer = [m for m in self._buffer if m.partition != partition]
        (tp,) = _call(
            "committed offsets",
            lambda: self._consumer.committed([TopicPartition(self.topic, partition)], timeout=self.bus.timeout_s),
        )
        offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
        try:
            self._consumer.seek(TopicPartition(self.topic, partition, offset))
        except KafkaException as exc:
            # not fetching yet: its first fetch starts at the committed offset anyway
            if exc.args[0].code() != KafkaError._STATE:
                raise BackendError(f"kafka seek on {self.topic}[{partition}] failed: {exc}") from exc
        return []

    def poll(self, *, max_messages: int, timeout_s: float) -> list[Message]:
        if not self._buffer:
            self._pump(max_messages, timeout_s)
        out, self._buffer = self._buffer[:max_messages], self._buffer[max_messages:]
        return out

    def ack(self, messages: Sequence[Message]) -> None:
        top: dict[int, int] = {}
        for m in messages:
            offset = m.position[0] - 1
            if offset > top.get(m.partition, -1):
                top[m.partition] = offset
        # only partitions still owned, and never backwards: a revoked partition's entries
        # are read again by its new owner from the last committed offset
        offsets = [
            TopicPartition(self.topic, p, off + 1)
            for p, off in sorted(top.items())
            if p in self._owned and off > self._acked.get(p, -1)
        ]
        if not offsets:
            return
        for attempt in range(3):
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
                break
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() in _OWNERSHIP_ERRORS:
                    log.info("kafka commit on %s skipped, ownership moved: %s", self.topic, err)
                    return
                if not err.retriable() or attempt == 2:
                    raise BackendError(f"kafka commit on {self.topic} failed: {exc}") from exc
                time.sleep(0.1 * 2**attempt)
        for tp in offsets:
            self._acked[tp.partition] = tp.offset - 1

    def close(self) -> None:
        """Leave the group at once (unacked entries go to the next owner)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(KafkaException, RuntimeError):
            self._consumer.close()
        self._owned.clear()
        self._buffer = []
