"""From a source to the bus: partition ticks by symbol and publish them as Arrow batches."""

from __future__ import annotations

import polars as pl

from tickwise.bus import DEADLETTER, TICKS, Bus, partition_of
from tickwise.codec import encode_json, encode_table
from tickwise.metrics import DEADLETTERS, TICKS_INGESTED
from tickwise.pipeline.validate import TICK_POLARS_SCHEMA


class TickPublisher:
    """Publish tick frames onto ``ticks.<partition>``, splitting large frames into batches.

    Examples
    --------
    >>> from tickwise.bus.memory import MemoryBus
    >>> bus = MemoryBus(partitions=2)
    >>> pub = TickPublisher(bus, source="doc")
    >>> pub.publish(pl.DataFrame({"symbol": ["A"], "ts_event": [1], "price": [1.0], "size": [1.0], "id": [None]}))
    1
    """

    def __init__(self, bus: Bus, *, source: str, max_batch: int = 10_000) -> None:
        self.bus = bus
        self.source = source
        self.max_batch = max_batch
        self._partition_cache: dict[str, int] = {}
        self.published = 0
        self.rejected = 0

    def _partitions(self, symbols: pl.Series) -> pl.Series:
        cache = self._partition_cache
        for s in symbols.unique().to_list():
            if s not in cache:
                cache[s] = partition_of(s if s is not None else "", self.bus.partitions)
        return symbols.fill_null("").replace_strict(cache, return_dtype=pl.Int32, default=0)

    def publish(self, ticks: pl.DataFrame) -> int:
        """Publish ticks (columns of the tick schema); return how many were published."""
        if ticks.height == 0:
            return 0
        ticks = ticks.select(list(TICK_POLARS_SCHEMA)).cast(TICK_POLARS_SCHEMA)  # type: ignore[arg-type]
        parts = ticks.with_columns(self._partitions(ticks["symbol"]).alias("_p"))
        for (p,), frame in parts.partition_by("_p", as_dict=True, maintain_order=True).items():
            frame = frame.drop("_p")
            payloads = [
                encode_table(frame.slice(i, self.max_batch).to_arrow())
                for i in range(0, frame.height, self.max_batch)
            ]
            self.bus.publish(TICKS, payloads, partition=int(p))  # type: ignore[arg-type]
        self.published += ticks.height
        TICKS_INGESTED.labels(self.source).inc(ticks.height)
        return ticks.height

    def reject(self, dead: pl.DataFrame) -> None:
        """Publish dead letters found at the source (e.g. malformed lines)."""
        if dead.height == 0:
            return
        self.rejected += dead.height
        rows = dead.with_columns(pl.col("ts").cast(pl.Utf8)).to_dicts()
        self.bus.publish(DEADLETTER, [encode_json(r) for r in rows])
        for reason in dead["reason"].to_list():
            DEADLETTERS.labels(reason.split(":")[0]).inc()
