"""Runners that consume a topic, commit to the warehouse, publish, and only then ack."""

from __future__ import annotations

import logging
import threading
import time

import polars as pl

from tickwise.bus import DEADLETTER, Bus, Consumer, Message, bars_topic
from tickwise.codec import decode_json, decode_table
from tickwise.pipeline.stages import BarStage, StageOutput
from tickwise.pipeline.validate import DEADLETTER_COLUMNS
from tickwise.store import Warehouse

log = logging.getLogger(__name__)


class StageRunner:
    """Feed closed bars to one `BarStage` and commit what it returns.

    Bars a stage has already seen (same symbol and interval, not newer than the last one)
    are dropped, so a replayed entry never updates a stage's state twice. A stage with a
    ``keepalive`` attribute gets `StageRunner.keepalive` there, to call while one call of it
    runs long (a warm-up), so the runner's partitions stay its own meanwhile. When a
    rebalance takes a timeframe's partition away or gives it, the runner calls the stage's
    ``revoked(timeframe)`` or ``assigned(timeframe)`` where it has them. When `run` stops,
    after the last queued bars, it commits the tables of the stage's ``on_stop()`` where it
    has one (the anomaly stage's saved state).

    Examples
    --------
    >>> import datetime as dt, tempfile
    >>> from tickwise.bus.memory import MemoryBus
    >>> from tickwise.codec import encode_table
    >>> from tickwise.store.duckdb import DuckDBWarehouse
    >>> class Count:
    ...     name, timeframes, seen = "count", ("1m",), 0
    ...     def on_bars(self, bars):
    ...         self.seen += bars.height
    ...         return StageOutput()
    >>> bus, stage = MemoryBus(), Count()
    >>> runner = StageRunner(bus, DuckDBWarehouse(tempfile.mkdtemp() + "/w.duckdb"), stage)
    >>> bar = pl.DataFrame({"symbol": ["A"], "timeframe": ["1m"], "ts": [dt.datetime(2024, 1, 2, tzinfo=dt.UTC)],
    ...                     "close": [1.0]})
    >>> bus.publish("bars.1m", [encode_table(bar.to_arrow())] * 2)  # the same bar twice
    >>> runner.step(timeout_s=0), stage.seen
    (1, 1)
    """

    def __init__(self, bus: Bus, warehouse: Warehouse, stage: BarStage, *, name: str = "runner-1",
                 commit_interval_ms: int = 200) -> None:
        self.bus, self.warehouse, self.stage = bus, warehouse, stage
        self.consumers: list[Consumer] = [
            bus.consumer(bars_topic(tf), group=stage.name, name=name) for tf in stage.timeframes
        ]
        self.commit_interval_s = commit_interval_ms / 1000
        self._last_ts: dict[tuple[str, str], int] = {}
        self.errors = 0
        #: batches in a row the stage failed on (0 after one it handled), and the last error
        self.failing = 0
        self.last_error = ""
        self.bars_seen = 0
        #: rows committed to each table the stage says it writes (its ``outputs``), for a run's summary
        self.rows_written: dict[str, int] = dict.fromkeys(getattr(stage, "outputs", ()), 0)
        #: seconds between lease renewals, in `run` and through `keepalive` (well under a lease)
        self.renew_every_s = 1.0
        self._reclaimed: list[Message] = []
        self._renewed = time.monotonic()
        if hasattr(stage, "keepalive"):
            stage.keepalive = self.keepalive

    def rebalance(self) -> None:
        """Rebalance every consumer, taking over the entries a previous owner of a gained
        partition read but never acked (the next `step` feeds them first); tell the stage
        which timeframes it lost and gained. Call only between steps (all committed)."""
        for c, timeframe in zip(self.consumers, self.stage.timeframes, strict=True):
            change = c.rebalance()
            if change.lost:
                self._last_ts = {k: v for k, v in self._last_ts.items() if k[1] != timeframe}
                if hasattr(self.stage, "revoked"):
                    self.stage.revoked(timeframe)
            for p in change.gained:  # what the previous owner read but never acked comes first
                self._reclaimed.extend(c.reclaim(p))
            if change.gained and hasattr(self.stage, "assigned"):
                self.stage.assigned(timeframe)
        self._renewed = time.monotonic()

    def keepalive(self) -> None:
        """Renew the leases of this runner's partitions, at most every ``renew_every_s``."""
        if time.monotonic() - self._renewed >= self.renew_every_s:
            for c in self.consumers:
                c.renew()
            self._renewed = time.monotonic()

    def _fresh(self, bars: pl.DataFrame) -> pl.DataFrame:
        ts_ns = bars["ts"].dt.epoch("ns").to_list()
        keep = []
        for sym, tf, ts in zip(bars["symbol"].to_list(), bars["timeframe"].to_list(), ts_ns, strict=True):
            last = self._last_ts.get((sym, tf))
            ok = last is None or ts > last
            if ok:
                self._last_ts[(sym, tf)] = ts
            keep.append(ok)
        return bars.filter(pl.Series(keep, dtype=pl.Boolean))

    def step(self, timeout_s: float = 0.05) -> int:
        """Poll once, run the stage, commit, publish, ack; return the number of bars fed."""
        messages, self._reclaimed = self._reclaimed, []
        for c in self.consumers:
            messages.extend(c.poll(max_messages=256, timeout_s=timeout_s / len(self.consumers)))
        if not messages:
            return 0
        frames = [pl.from_arrow(decode_table(m.payload)) for m in messages]
        bars = self._fresh(pl.concat(frames, how="vertical_relaxed").sort("ts"))  # type: ignore[arg-type]
        if bars.height:
            try:
                out = self.stage.on_bars(bars)
                self.failing = 0
            except Exception as exc:  # the supervisor: a failing stage must not stop the pipeline
                self.errors += 1
                self.failing += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("stage %s failed on %d bars; they are skipped", self.stage.name, bars.height)
                out = StageOutput()
            if out.tables:
                self.warehouse.commit({name: df.to_arrow() for name, df in out.tables.items()})
                for name, df in out.tables.items():
                    if name in self.rows_written:
                        self.rows_written[name] += df.height
            for topic, payloads in out.topics.items():
                if payloads:
                    self.bus.publish(topic, payloads)
        for c in self.consumers:
            c.ack([m for m in messages if m.topic == c.topic])
        self.bars_seen += bars.height
        return bars.height

    def run(self, stop: threading.Event) -> None:
        self.rebalance()
        while not stop.is_set():
            self.step()
            if time.monotonic() - self._renewed > self.renew_every_s:
                self.rebalance()
        # finish what is queued, then let the stage save what it keeps (`on_stop`, where it has one)
        while self.step(timeout_s=0.0):
            pass
        final = self.stage.on_stop() if hasattr(self.stage, "on_stop") else None
        if final is not None and final.tables:
            self.warehouse.commit({name: df.to_arrow() for name, df in final.tables.items()})
        for c in self.consumers:
            c.close()


class DeadLetterSink:
    """Write every entry of the ``deadletter`` topic to the ``deadletter`` table."""

    def __init__(self, bus: Bus, warehouse: Warehouse, *, name: str = "sink-1") -> None:
        self.bus, self.warehouse = bus, warehouse
        self.consumer = bus.consumer(DEADLETTER, group="deadletter-sink", name=name)
        self.written = 0
        self._reclaimed: list[Message] = []

    def rebalance(self) -> None:
        """Rebalance, taking over the entries a previous owner read but never acked."""
        for p in self.consumer.rebalance().gained:
            self._reclaimed.extend(self.consumer.reclaim(p))

    def step(self, timeout_s: float = 0.1) -> int:
        messages, self._reclaimed = self._reclaimed, []
        messages.extend(self.consumer.poll(max_messages=1000, timeout_s=timeout_s))
        if not messages:
            return 0
        rows = [decode_json(m.payload) for m in messages]
        frame = pl.DataFrame(
            {
                "ts": [r.get("ts") for r in rows],
                "source": [str(r.get("source", "")) for r in rows],
                "reason": [str(r.get("reason", "")) for r in rows],
                "payload": [str(r.get("payload", "")) for r in rows],
            }
        ).with_columns(pl.col("ts").str.to_datetime(time_zone="UTC", strict=False).cast(DEADLETTER_COLUMNS["ts"]))
        self.warehouse.commit({"deadletter": frame.to_arrow()})
        self.consumer.ack(messages)
        self.written += len(messages)
        return len(messages)

    def run(self, stop: threading.Event) -> None:
        self.rebalance()
        last = time.monotonic()
        while not stop.is_set():
            self.step()
            if time.monotonic() - last > 1.0:
                self.rebalance()
                last = time.monotonic()
        while self.step(timeout_s=0.0):
            pass
        self.consumer.close()
