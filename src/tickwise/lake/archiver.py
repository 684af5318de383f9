"""Live archiving: the bus's ticks, closed bars and signals into the lake.

`LakeArchiver` reads ``ticks`` (Arrow IPC of `tickwise.domain.TICK_SCHEMA`), ``bars.<tf>``
(Arrow IPC of `tickwise.domain.BAR_SCHEMA`) and ``signals`` (one JSON record, or a list of
them, per entry) as its own consumer group, buffers them in a `LakeWriter`, and every
``flush_interval_s`` seconds or ``flush_rows`` rows commits the files and only then acks
the entries. A crash before the ack means the entries come again (at least once); the
duplicate rows that may follow are removed by compaction, which keeps one row per key.
A payload that cannot be decoded goes to the ``deadletter`` topic with the reason.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

# declares the signals table, whose column types the lake's signals then keep
import tickwise.signals.tables  # noqa: F401
from tickwise.bus.base import DEADLETTER, SIGNALS, TICKS, Bus, Consumer, Message, bars_topic
from tickwise.codec import decode_json, decode_table, encode_json
from tickwise.exceptions import InputError
from tickwise.lake.writer import LakeWriter

if TYPE_CHECKING:
    from tickwise.config import Settings


def signals_table(records: Sequence[dict[str, object]]) -> pa.Table:
    """Turn signal records (JSON dicts with ``symbol`` and ``ts``) into an Arrow table.

    ``ts`` may be nanoseconds since the epoch or an ISO-8601 string; ``ts_ns`` (ns), when
    present, replaces it.

    Examples
    --------
    >>> signals_table([{"symbol": "A", "ts": 0, "action": "BUY"}]).schema.field("ts").type
    TimestampType(timestamp[ns, tz=UTC])
    """
    df = pl.DataFrame(list(records), infer_schema_length=None)
    if "ts_ns" in df.columns:
        # exact nanoseconds beat the ISO text (microseconds) when both come
        df = df.drop("ts", strict=False).rename({"ts_ns": "ts"})
    if "ts" not in df.columns or "symbol" not in df.columns:
        raise InputError(f"a signal needs 'symbol' and 'ts', was {df.columns}")
    ts = df.schema["ts"]
    if ts == pl.Utf8:
        df = df.with_columns(
            pl.col("ts").str.to_datetime(time_unit="ns", time_zone="UTC")
        )
    elif ts.is_integer():
        df = df.with_columns(pl.from_epoch(pl.col("ts"), time_unit="ns").dt.replace_time_zone("UTC"))
    else:
        raise InputError(f"a signal's ts must be ns since the epoch or ISO text, was {ts}")
    return df.to_arrow()


class LakeArchiver:
    """Archives ticks, closed bars and signals from the bus into the lake.

    Parameters
    ----------
    bus
        Where to read.
    writer
        A `LakeWriter` onto the lake.
    group
        The consumer group (one per archiving job; several members share the work).
    timeframes
        Bar intervals whose ``bars.<tf>`` topics are archived.
    flush_interval_s, flush_rows
        Commit (and then ack) when this much time has passed or this many rows wait.

    Examples
    --------
    >>> import tempfile
    >>> from tickwise.bus.memory import MemoryBus
    >>> from tickwise.codec import encode_table
    >>> from tickwise.lake import open_lake
    >>> lake = open_lake("file://" + tempfile.mkdtemp())
    >>> bus = MemoryBus(partitions=1)
    >>> archiver = LakeArchiver(bus, lake.writer(), timeframes=("1m",))
    >>> bus.publish("ticks", [encode_table(pa.table({"symbol": ["A"], "ts_event": [1],
    ...     "price": [1.0], "size": [2.0], "id": [None]}))])
    >>> archiver.step(timeout_s=0), archiver.flush()
    (1, 1)
    >>> lake.read("ticks").num_rows
    1
    """

    def __init__(self, bus: Bus, writer: LakeWriter, *, group: str = "lake", name: str = "lake-0",
                 timeframes: Sequence[str] = ("1s", "1m", "5m"), flush_interval_s: float = 5.0,
                 flush_rows: int = 200_000, max_messages: int = 256) -> None:
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be > 0, was {flush_interval_s}")
        if flush_rows < 1:
            raise ValueError(f"flush_rows must be >= 1, was {flush_rows}")
        self.bus = bus
        self.writer = writer
        self.flush_interval_s = flush_interval_s
        self.flush_rows = flush_rows
        self.max_messages = max_messages
        topics = [TICKS, *[bars_topic(tf) for tf in timeframes], SIGNALS]
        self._consumers: dict[str, Consumer] = {
            t: bus.consumer(t, group=group, name=name) for t in topics
        }
        self._pending: dict[str, list[Message]] = {t: [] for t in topics}
        self._last_flush = time.monotonic()
        #: rows committed so far, per dataset
        self.archived: dict[str, int] = {"ticks": 0, "bars": 0, "signals": 0}
        self._buffered: dict[str, int] = {"ticks": 0, "bars": 0, "signals": 0}
        self.deadlettered = 0
        self.rebalance()

    def _decode(self, message: Message) -> tuple[str, pa.Table]:
        if message.topic == SIGNALS:
            record = decode_json(message.payload)
            records = record if isinstance(record, list) else [record]
            return "signals", signals_table(records)
        table = decode_table(message.payload)
        return ("ticks" if message.topic == TICKS else "bars"), table

    def _dead_letter(self, message: Message, reason: str) -> None:
        from tickwise.metrics import DEADLETTERS

        record = {
            "ts": datetime.now(UTC).isoformat(),
            "source": f"lake:{message.topic}",
            "reason": reason,
            "payload": base64.b64encode(message.payload).decode(),
        }
        self.bus.publish(DEADLETTER, [encode_json(record)])
        DEADLETTERS.labels("lake").inc()
        self.deadlettered += 1

    def rebalance(self) -> None:
        """Renew partition ownership; take over entries a previous owner read but never acked.

        Call only when nothing read is uncommitted (right after `flush`).
        """
        for topic, consumer in self._consumers.items():
            for partition in consumer.rebalance().gained:
                self._buffer(topic, consumer.reclaim(partition))

    def _buffer(self, topic: str, messages: list[Message]) -> None:
        for message in messages:
            try:
                dataset, table = self._decode(message)
                self.writer.append(dataset, table)
                self._buffered[dataset] += table.num_rows
            except (InputError, ValueError, TypeError, pa.ArrowException,
                    pl.exceptions.PolarsError) as exc:
                self._dead_letter(message, f"lake: {type(exc).__name__}: {exc}")
        self._pending[topic].extend(messages)

    def step(self, *, timeout_s: float = 0.2) -> int:
        """Poll every topic once and buffer what came; return the number of entries read."""
        read = 0
        per_topic = timeout_s / max(len(self._consumers), 1)
        for topic, consumer in self._consumers.items():
            messages = consumer.poll(max_messages=self.max_messages, timeout_s=per_topic)
            self._buffer(topic, messages)
            read += len(messages)
        return read

    def should_flush(self) -> bool:
        waiting = any(self._pending.values())
        return waiting and (
            self.writer.pending_rows >= self.flush_rows
            or time.monotonic() - self._last_flush >= self.flush_interval_s
        )

    def flush(self) -> int:
        """Commit the buffered rows to the lake, then ack their entries; return entries acked."""
        self.writer.flush()
        for name, rows in self._buffered.items():
            self.archived[name] += rows
            self._buffered[name] = 0
        acked = 0
        for topic, messages in self._pending.items():
            if messages:
                self._consumers[topic].ack(messages)
                acked += len(messages)
                self._pending[topic] = []
        self._last_flush = time.monotonic()
        return acked

    def run(self, stop: threading.Event) -> None:
        """Archive until ``stop`` is set, then commit what is buffered and leave the group."""
        try:
            while not stop.is_set():
                self.step()
                if self.should_flush():
                    self.flush()
                    self.rebalance()
            self.flush()
        finally:
            self.close()

    def close(self) -> None:
        for consumer in self._consumers.values():
            consumer.close()


def archiver_for(settings: Settings, bus: Bus, *, name: str = "lake-0",
                 flush_interval_s: float = 5.0) -> LakeArchiver:
    """Build the archiver `tickwise up` runs: the configured lake and timeframes.

    Run it in a thread: ``threading.Thread(target=archiver.run, args=(stop,))``.
    """
    from tickwise.lake import lake_for

    return LakeArchiver(bus, lake_for(settings).writer(), name=name, timeframes=settings.timeframes,
                        flush_interval_s=flush_interval_s)
