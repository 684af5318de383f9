"""The live stream behind ``/api/v1/stream``: bus topics read as a viewer, fanned out to clients.

One thread polls ``Bus.read_latest`` on each topic (``bars.<tf>``, ``signals``,
``forecasts``, ``anomalies``) and keeps the newest entry id it has seen per topic, so each
entry is decoded and encoded once and sent to every subscriber that wants it. The API never
joins a consumer group: on the memory bus a lagging group would hold back producers, and a
viewer must never slow the pipeline. Each WebSocket message is a JSON array of the events
one round found for that client. A subscriber that cannot keep up loses its oldest
messages (counted), not the server's memory.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from prometheus_client import REGISTRY

from tickwise import metrics
from tickwise.bus.base import ANOMALIES, FORECASTS, SIGNALS, Bus, Message, bars_topic, position_of
from tickwise.codec import decode_json, decode_table
from tickwise.serve.monitor import ModelMonitor
from tickwise.serve.records import to_records

_encoder = msgspec.json.Encoder(enc_hook=str)

KINDS = ("bar", "signal", "forecast", "anomaly")


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event ready to send: its filters and its JSON text."""

    kind: str
    symbol: str | None
    timeframe: str | None
    text: str


@dataclass(eq=False)
class Subscription:
    """A client's filters and its queue of JSON texts."""

    symbols: frozenset[str] | None
    timeframes: frozenset[str] | None
    kinds: frozenset[str]
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(maxsize=4096))
    dropped: int = 0

    def wants(self, event: StreamEvent) -> bool:
        if event.kind not in self.kinds:
            return False
        if self.symbols is not None and event.symbol is not None and event.symbol not in self.symbols:
            return False
        return not (
            event.kind == "bar" and self.timeframes is not None and event.timeframe not in self.timeframes
        )

    def offer(self, text: str) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(text)


def _records(payload: bytes) -> list[dict[str, Any]]:
    value = decode_json(payload)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


class PipelineRates:
    """Rates derived from the pipeline's counters, sampled about once a second."""

    def __init__(self) -> None:
        self.ticks_per_s = 0.0
        self._last: tuple[float, float] | None = None

    def sample(self, now: float) -> None:
        value = REGISTRY.get_sample_value("tickwise_ticks_processed_total") or 0.0
        if self._last is not None and now - self._last[0] > 0:
            self.ticks_per_s = max(0.0, (value - self._last[1]) / (now - self._last[0]))
        self._last = (now, value)


class StreamHub:
    """Poll the bus as a viewer and fan events out to WebSocket subscribers.

    Parameters
    ----------
    bus
        The bus to watch; only `Bus.read_latest` is called.
    timeframes
        Intervals whose ``bars.<tf>`` topics are watched.
    poll_interval_s
        Pause between two rounds of reads.
    read_count
        Entries read per topic per round; more new entries than this between two rounds
        are counted in ``tickwise_stream_missed_total``.

    Examples
    --------
    >>> from tickwise.bus.memory import MemoryBus
    >>> hub = StreamHub(MemoryBus(), timeframes=["1m"])
    >>> sorted(hub.topics)
    ['anomalies', 'bars.1m', 'forecasts', 'signals']
    """

    def __init__(self, bus: Bus, *, timeframes: Iterable[str], poll_interval_s: float = 0.01,
                 read_count: int = 512, monitor: ModelMonitor | None = None) -> None:
        self.bus = bus
        self.topics = {bars_topic(tf): "bar" for tf in timeframes}
        self.topics.update({SIGNALS: "signal", FORECASTS: "forecast", ANOMALIES: "anomaly"})
        self.poll_interval_s = poll_interval_s
        self.read_count = read_count
        self.monitor = monitor or ModelMonitor()
        self.rates = PipelineRates()
        self._subs: set[Subscription] = set()
        self._last: dict[str, tuple[int, int] | None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start polling; events are delivered on ``loop``."""
        self._loop = loop
        self._stop.clear()
        for topic in self.topics:
            self._last[topic] = self._newest(topic)
        self._thread = threading.Thread(target=self._run, name="tickwise-stream", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for sub in list(self._subs):
            sub.queue.put_nowait(None)

    def subscribe(self, *, symbols: Iterable[str] | None = None, timeframes: Iterable[str] | None = None,
                  kinds: Iterable[str] = KINDS) -> Subscription:
        """Register a subscriber (call on the event loop)."""
        sub = Subscription(
            frozenset(symbols) if symbols else None,
            frozenset(timeframes) if timeframes else None,
            frozenset(kinds),
        )
        self._subs.add(sub)
        metrics.STREAM_SUBSCRIBERS.set(len(self._subs))
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        metrics.STREAM_SUBSCRIBERS.set(len(self._subs))

    def _newest(self, topic: str) -> tuple[int, int] | None:
        latest = self.bus.read_latest(topic, 1)
        return position_of(latest[-1].id) if latest else None

    def _run(self) -> None:
        next_sample = 0.0
        while not self._stop.is_set():
            started = time.monotonic()
            if started >= next_sample:
                self.rates.sample(started)
                next_sample = started + 1.0
            events: list[StreamEvent] = []
            for topic, kind in self.topics.items():
                try:
                    events.extend(self._read(topic, kind))
                except Exception:  # a bus hiccup must not end the stream; the next round retries
                    self.errors += 1
            if events and self._loop is not None and not self._loop.is_closed():
                try:
                    self._loop.call_soon_threadsafe(self._deliver, events)
                except RuntimeError:  # the loop closed between the check and the call
                    return
            self._stop.wait(max(0.0, self.poll_interval_s - (time.monotonic() - started)))

    def _read(self, topic: str, kind: str) -> list[StreamEvent]:
        messages = self.bus.read_latest(topic, self.read_count)
        last = self._last.get(topic)
        fresh: list[Message] = [m for m in messages if last is None or position_of(m.id) > last]
        if not fresh:
            return []
        if last is not None and len(fresh) == len(messages) == self.read_count:
            metrics.STREAM_MISSED.labels(topic).inc()
        self._last[topic] = position_of(fresh[-1].id)
        out = []
        for message in fresh:
            records = to_records(decode_table(message.payload)) if kind == "bar" else _records(message.payload)
            for record in records:
                out.append(self._event(kind, topic, record))
        metrics.STREAM_EVENTS.labels(kind).inc(len(out))
        return out

    def _event(self, kind: str, topic: str, record: dict[str, Any]) -> StreamEvent:
        symbol = record.get("symbol")
        timeframe = record.get("timeframe")
        if kind == "bar":
            self.monitor.on_bar(record)
        elif kind == "forecast":
            self.monitor.on_forecast(record)
        elif kind == "anomaly":
            metrics.ANOMALIES.labels(str(symbol), str(record.get("detector", "unknown"))).inc()
        text = _encoder.encode({"type": kind, "topic": topic, "data": record}).decode()
        return StreamEvent(kind, symbol if isinstance(symbol, str) else None,
                           timeframe if isinstance(timeframe, str) else None, text)

    def _deliver(self, events: list[StreamEvent]) -> None:
        # one message per subscriber and round: a JSON array of the events it wants, so a
        # batch of closed bars costs one send per client, not one per bar
        everything = "[" + ",".join(e.text for e in events) + "]"
        for sub in list(self._subs):
            if sub.symbols is None and sub.timeframes is None and len(sub.kinds) == len(KINDS):
                sub.offer(everything)
                continue
            wanted = [e.text for e in events if sub.wants(e)]
            if wanted:
                sub.offer("[" + ",".join(wanted) + "]")
