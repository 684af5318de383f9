"""The contract for analytics that run on closed bars (signals, forecasts, anomalies).

A stage receives every closed bar of the timeframes it asks for, as a Polars frame with
the columns of `tickwise.domain.BAR_SCHEMA` (``ts`` as UTC datetime), in event-time order
per symbol, and returns rows to upsert and payloads to publish. `StageRunner` (in
`tickwise.pipeline.stage_runner`) consumes the ``bars.<timeframe>`` topics as a consumer
group named after the stage, commits the stage's rows to the warehouse, publishes, and
only then acks, so a stage sees each bar at least once and its writes are idempotent
upserts keyed by ``(symbol, ts, ...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import polars as pl

if TYPE_CHECKING:
    from tickwise.store.base import Warehouse

#: (symbol, timeframe, before_ts_ns, count) -> up to ``count`` bars before ``before_ts_ns``, oldest first
History = Callable[[str, str, int, int], pl.DataFrame]


@dataclass(slots=True)
class StageOutput:
    """What one call of a stage produced."""

    #: warehouse table name -> rows to upsert (columns of that table's `TableSpec`)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    #: topic -> payloads to publish after the commit
    topics: dict[str, list[bytes]] = field(default_factory=dict)

    def merge(self, other: StageOutput) -> StageOutput:
        for name, df in other.tables.items():
            self.tables[name] = pl.concat([self.tables[name], df], how="vertical_relaxed") if name in self.tables else df
        for topic, payloads in other.topics.items():
            self.topics.setdefault(topic, []).extend(payloads)
        return self


class BarStage(Protocol):
    """Something that runs on every closed bar."""

    #: consumer group name on the bus, and the rule/model name in its tables
    name: str
    #: timeframes whose closed bars it receives, e.g. ``("1m",)``
    timeframes: tuple[str, ...]
    #: (optional) the tables of its results, which a run's summary counts, e.g. ``("signals",)``

    def on_bars(self, bars: pl.DataFrame) -> StageOutput:
        """Process closed bars (several symbols, oldest first per symbol)."""
        ...


class WarehouseHistory:
    """Recent bars of a series from the warehouse, so a restarted stage needs no warm-up: a
    `History`, plus `many` for the series of one batch in one read."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def __call__(self, symbol: str, timeframe: str, before_ts_ns: int, count: int) -> pl.DataFrame:
        return pl.from_arrow(self.warehouse.bars(symbol, timeframe, end_ts=before_ts_ns, last=count))  # type: ignore[return-value]

    def many(self, series: Sequence[tuple[str, str, int]], count: int) -> pl.DataFrame:
        """Up to ``count`` bars before each ``(symbol, timeframe, before_ts_ns)``, oldest first per series."""
        return pl.from_arrow(self.warehouse.last_rows("bars", series, count))  # type: ignore[return-value]


def warehouse_history(warehouse: Warehouse) -> WarehouseHistory:
    """Recent bars of a series from the warehouse (`WarehouseHistory`)."""
    return WarehouseHistory(warehouse)


def new_series(bars: pl.DataFrame, seen: Container[tuple[str, str]]) -> list[tuple[str, str, int]]:
    """``(symbol, timeframe, first ts in ns)`` of each series in ``bars`` not in ``seen``."""
    firsts = bars.group_by("symbol", "timeframe", maintain_order=True).agg(pl.col("ts").min().dt.epoch("ns"))
    return [(s, tf, t) for s, tf, t in firsts.iter_rows() if (s, tf) not in seen]


def stored_bars(history: History, series: Sequence[tuple[str, str, int]], count: int) -> pl.DataFrame:
    """Up to ``count`` stored bars before each ``(symbol, timeframe, before_ts_ns)``: one read
    where the history can (`WarehouseHistory.many`), else one per series."""
    many = getattr(history, "many", None)
    if many is not None:
        return many(series, count)  # type: ignore[no-any-return]
    parts = [p for p in (history(s, tf, t, count) for s, tf, t in series) if p.height]
    return pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame()
