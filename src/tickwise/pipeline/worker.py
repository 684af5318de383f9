"""The pipeline stage: ticks from the bus → validation → event-time bars → warehouse.

One `PipelineWorker` owns some partitions of ``ticks`` (all of them on a memory bus; its
share of the leases on Redis). Every ``commit_interval_ms`` it commits, in one warehouse
transaction, the bars that closed, and — on a durable bus — for each owned partition the
open windows and the id of the last entry it processed. Only then does it ack. On taking
over a partition it loads that checkpoint, re-reads the entries left pending by the
previous owner and skips those already inside the checkpoint, so a crash at any point
yields the same bars as an uninterrupted run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import polars as pl

from tickwise.bus import DEADLETTER, TICKS, Bus, Message, bars_topic
from tickwise.bus.base import position_of
from tickwise.codec import decode_table, encode_json, encode_table
from tickwise.metrics import (
    BAR_LATENCY,
    BARS_WRITTEN,
    DEADLETTERS,
    LAST_TICK,
    TICKS_PROCESSED,
    WATERMARK,
)
from tickwise.pipeline.bars import BarAggregator, BarState
from tickwise.pipeline.validate import (
    TICK_POLARS_SCHEMA,
    empty_deadletters,
    rejected_to_deadletters,
    validate_ticks,
)
from tickwise.store import Checkpoint, Warehouse

log = logging.getLogger(__name__)

GROUP = "pipeline"


@dataclass
class WorkerStats:
    """Counters for the status line and tests."""

    ticks: int = 0
    bars: int = 0
    deadletters: int = 0
    commits: int = 0
    latencies_s: list[float] = field(default_factory=list)


@dataclass
class _Partition:
    state: BarState
    position: str = "0-0"
    last_arrival: float = field(default_factory=time.monotonic)


class PipelineWorker:
    """Run validation and bar aggregation for the partitions this worker owns.

    Parameters
    ----------
    bus, warehouse
        Where ticks come from and bars go.
    timeframes, lateness_ms
        Bar intervals and allowed lateness (see `tickwise.pipeline.bars`).
    name
        Member name in the ``pipeline`` consumer group (unique per worker).
    commit_interval_ms
        How often the worker commits and acks.
    idle_close_ms
        After this long without ticks on a partition, its watermark moves on with the
        clock, so bars of a quiet market still close on time.
    """

    def __init__(
        self,
        bus: Bus,
        warehouse: Warehouse,
        *,
        timeframes: list[str],
        lateness_ms: int = 1000,
        name: str = "worker-1",
        commit_interval_ms: int = 200,
        idle_close_ms: int = 1500,
        max_future_s: float = 60.0,
        poll_max: int = 256,
    ) -> None:
        self.bus, self.warehouse, self.name = bus, warehouse, name
        self.aggregator = BarAggregator(timeframes, lateness_ms=lateness_ms)
        self.timeframes = self.aggregator.timeframes
        self.commit_interval_s = commit_interval_ms / 1000
        self.idle_close_s = idle_close_ms / 1000
        self.max_future_s = max_future_s
        self.poll_max = poll_max
        self.consumer = bus.consumer(TICKS, group=GROUP, name=name)
        self.partitions: dict[int, _Partition] = {}
        self.stats = WorkerStats()
        self._pending: list[Message] = []
        self._bars: list[pl.DataFrame] = []
        self._dead: list[pl.DataFrame] = []
        self._closed_at: list[tuple[float, int]] = []
        self._dirty: set[int] = set()
        #: set when `run` ended with an error
        self.failed = False

    # -- lifecycle -------------------------------------------------------------------

    def run(self, stop: threading.Event, *, drain: bool = False) -> WorkerStats:
        """Process until ``stop`` is set; with ``drain``, close every open window at the end."""
        try:
            return self._run(stop, drain=drain)
        except BaseException:
            self.failed = True
            raise

    def _run(self, stop: threading.Event, *, drain: bool) -> WorkerStats:
        self._rebalance()
        last_commit = time.monotonic()
        while not stop.is_set():
            messages = self.consumer.poll(max_messages=self.poll_max, timeout_s=0.05)
            if messages:
                self.process(messages)
            now = time.monotonic()
            # closed bars are committed at once (bar latency); the rest every interval
            if self._bars or now - last_commit >= self.commit_interval_s:
                self._advance_idle(now)
                self.commit()
                self._rebalance()
                last_commit = now
        if drain:
            # take what is still queued, then close everything
            while messages := self.consumer.poll(max_messages=self.poll_max, timeout_s=0):
                self.process(messages)
            for part in self.partitions.values():
                bars = self.aggregator.drain(part.state)
                if bars.height:
                    self._bars.append(bars)
                    self._closed_at.append((time.time(), bars.height))
            self._dirty.update(self.partitions)
        self.commit()
        self.consumer.close()
        return self.stats

    def _rebalance(self) -> None:
        change = self.consumer.rebalance()
        for p in change.lost:
            self.partitions.pop(p, None)
        for p in change.gained:
            self._take_over(p)

    def _checkpoint_key(self, partition: int) -> str:
        return f"{GROUP}:{TICKS}:{partition}"

    def _take_over(self, partition: int) -> None:
        part = _Partition(BarState())
        if self.bus.is_durable:
            saved = self.warehouse.load_checkpoint(self._checkpoint_key(partition))
            if saved is not None:
                part = _Partition(BarState.from_bytes(saved.state), saved.position)
        self.partitions[partition] = part
        if self.bus.is_durable:
            left = self.consumer.reclaim(partition)
            if left:
                log.info("partition %d: %d entries left pending by a previous owner", partition, len(left))
                self.process(left)

    # -- processing ------------------------------------------------------------------

    def process(self, messages: list[Message]) -> None:
        """Validate and aggregate a list of entries (any partitions, in read order)."""
        by_partition: dict[int, list[Message]] = defaultdict(list)
        for m in messages:
            by_partition[m.partition].append(m)
        for p, msgs in by_partition.items():
            part = self.partitions.get(p)
            if part is None and p in self.consumer.owned():
                self._take_over(p)  # gained outside _rebalance (a consumer that rebalanced itself)
                part = self.partitions[p]
            if part is None:  # a partition lost since the poll: leave it for its new owner
                continue
            done = position_of(part.position)
            fresh = [m for m in msgs if m.position > done]
            stale = [m for m in msgs if m.position <= done]
            self._pending.extend(stale)  # already inside the checkpoint: only ack
            if not fresh:
                continue
            frames = [pl.from_arrow(decode_table(m.payload)) for m in fresh]
            ticks = pl.concat([f.cast(TICK_POLARS_SCHEMA) for f in frames])  # type: ignore[arg-type]
            good, dead = validate_ticks(ticks, source=f"{TICKS}.{p}", max_future_s=self.max_future_s)
            out = self.aggregator.process(part.state, good)
            if out.rejected.height:
                dead = pl.concat([dead, rejected_to_deadletters(out.rejected, source=f"{TICKS}.{p}")])
            if dead.height:
                self._dead.append(dead)
            if out.bars.height:
                self._bars.append(out.bars)
                self._closed_at.append((out.ts_closed, out.bars.height))
            part.position = fresh[-1].id
            part.last_arrival = time.monotonic()
            self._pending.extend(fresh)
            self._dirty.add(p)
            aggregated = good.height - out.rejected.height
            self.stats.ticks += aggregated
            TICKS_PROCESSED.inc(aggregated)
        LAST_TICK.set(time.time())

    def _advance_idle(self, now: float) -> None:
        for p, part in self.partitions.items():
            idle = now - part.last_arrival
            if idle >= self.idle_close_s and part.state.max_ts > -(2**63):
                # extend event time by the wall-clock time the partition has been quiet
                wm = part.state.max_ts + int(idle * 1e9) - self.aggregator.lateness_ns
                out = self.aggregator.advance(part.state, wm)
                if out.bars.height:
                    self._bars.append(out.bars)
                    self._closed_at.append((out.ts_closed, out.bars.height))
                    self._dirty.add(p)

    def commit(self) -> None:
        """Publish, commit and ack everything processed since the last commit."""
        if not (self._pending or self._bars or self._dead or self._dirty):
            return
        bars = pl.concat(self._bars) if self._bars else None
        dead = pl.concat(self._dead) if self._dead else empty_deadletters()
        # publish first: downstream stages drop bars they have seen, so a replay is harmless
        by_timeframe = bars.partition_by("timeframe", as_dict=True) if bars is not None else {}
        for (tf,), frame in by_timeframe.items():
            self.bus.publish(bars_topic(str(tf)), [encode_table(frame.to_arrow())])
        if dead.height:
            rows = dead.with_columns(pl.col("ts").cast(pl.Utf8)).to_dicts()
            self.bus.publish(DEADLETTER, [encode_json(r) for r in rows])
        writes = {"bars": bars.to_arrow()} if bars is not None else {}
        checkpoints = []
        if self.bus.is_durable:
            for p in sorted(self._dirty):
                part = self.partitions.get(p)
                if part is not None:
                    checkpoints.append(
                        Checkpoint(self._checkpoint_key(p), part.position, part.state.to_bytes())
                    )
        self.warehouse.commit(writes, checkpoints)
        committed = time.time()
        self.consumer.ack(self._pending)
        for closed_at, _ in self._closed_at:
            latency = max(committed - closed_at, 0.0)
            BAR_LATENCY.observe(latency)
            self.stats.latencies_s.append(latency)
        if bars is not None:
            self.stats.bars += bars.height
            for (tf,), frame in by_timeframe.items():
                BARS_WRITTEN.labels(str(tf)).inc(frame.height)
        if dead.height:
            self.stats.deadletters += dead.height
            for reason, n in dead.group_by(pl.col("reason").str.split(":").list.first()).len().iter_rows():
                DEADLETTERS.labels(reason).inc(n)
        wm = max((part.state.watermark for part in self.partitions.values()), default=None)
        if wm is not None and wm > 0:
            WATERMARK.set(wm / 1e9)
        self.stats.commits += 1
        self._pending, self._bars, self._dead, self._closed_at = [], [], [], []
        self._dirty = set()
