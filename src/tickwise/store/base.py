"""The warehouse contract: named tables with natural keys, idempotent upserts, read-only SQL.

Tables are declared once as `TableSpec` (here and by each analytics package through
`register_table`) and created automatically by every backend. All writes are upserts keyed
by the spec's key, so replaying the same input never duplicates a row. `Warehouse.commit`
writes several tables and the pipeline's checkpoints in one transaction: that is the
commit point after which a consumer may ack the bus.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

#: Column types a spec may use, and their Arrow types.
ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "double": pa.float64(),
    "bigint": pa.int64(),
    "boolean": pa.bool_(),
    "blob": pa.binary(),
}


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A warehouse table: columns as ``(name, type)`` with types from `ARROW_TYPES`.

    Examples
    --------
    >>> spec = TableSpec("t", (("k", "text"), ("v", "double")), key=("k",))
    >>> spec.arrow_schema.names
    ['k', 'v']
    """

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [c for c, _ in self.columns]
        for _, kind in self.columns:
            if kind not in ARROW_TYPES:
                raise ValueError(f"column type must be one of {sorted(ARROW_TYPES)}, was {kind!r}")
        for k in self.key:
            if k not in names:
                raise ValueError(f"key column must be a column of {self.name}, was {k!r}")

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([(c, ARROW_TYPES[t]) for c, t in self.columns])


TABLES: dict[str, TableSpec] = {}


def register_table(spec: TableSpec) -> TableSpec:
    """Declare a table every warehouse creates on open (idempotent for the same spec)."""
    existing = TABLES.get(spec.name)
    if existing is not None and existing != spec:
        raise ValueError(f"table {spec.name!r} is already declared with other columns")
    TABLES[spec.name] = spec
    return spec


BARS = register_table(
    TableSpec(
        "bars",
        (
            ("symbol", "text"),
            ("timeframe", "text"),
            ("ts", "timestamp"),
            ("open", "double"),
            ("high", "double"),
            ("low", "double"),
            ("close", "double"),
            ("volume", "double"),
            ("trades", "bigint"),
            ("vwap", "double"),
        ),
        key=("symbol", "timeframe", "ts"),
    )
)

DEADLETTERS = register_table(
    TableSpec(
        "deadletter",
        (("ts", "timestamp"), ("source", "text"), ("reason", "text"), ("payload", "text")),
    )
)

CHECKPOINTS = register_table(
    TableSpec(
        "checkpoints",
        (("key", "text"), ("position", "text"), ("state", "blob"), ("ts_updated", "timestamp")),
        key=("key",),
    )
)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a worker needs to resume a partition: last position read and open-window state."""

    key: str
    position: str
    state: bytes


def conform(spec: TableSpec, data: pa.Table) -> pa.Table:
    """Cast a table to a spec's columns and types (missing nullable columns become null)."""
    columns = []
    for name, kind in spec.columns:
        target = ARROW_TYPES[kind]
        if name in data.column_names:
            col = data.column(name)
            if pa.types.is_timestamp(col.type) and pa.types.is_timestamp(target):
                col = col.cast(pa.timestamp(col.type.unit, tz="UTC")).cast(target, safe=False)
            elif pa.types.is_integer(col.type) and pa.types.is_timestamp(target):
                col = col.cast(pa.timestamp("ns", tz="UTC")).cast(target, safe=False)
            else:
                col = col.cast(target)
        else:
            col = pa.nulls(data.num_rows, target)
        columns.append(col)
    return pa.table(columns, schema=spec.arrow_schema)


def prepare_writes(
    writes: dict[str, pa.Table], checkpoints: list[Checkpoint] | tuple[Checkpoint, ...] = ()
) -> list[tuple[TableSpec, pa.Table]]:
    """Conform each table to its spec, keep one row per key (the last), add the checkpoints.

    Backends upsert the result in one transaction; an upsert must not see a key twice.
    """
    import datetime as dt

    import polars as pl

    prepared = []
    for name, data in writes.items():
        spec = TABLES.get(name)
        if spec is None:
            raise ValueError(f"table must be one of {sorted(TABLES)}, was {name!r}")
        table = conform(spec, data if isinstance(data, pa.Table) else data.to_arrow())
        if table.num_rows == 0:
            continue
        if spec.key:
            frame = pl.from_arrow(table)
            table = conform(spec, frame.unique(subset=list(spec.key), keep="last", maintain_order=True).to_arrow())
        prepared.append((spec, table))
    if checkpoints:
        now = dt.datetime.now(dt.UTC)
        cp = pa.table({
            "key": [c.key for c in checkpoints],
            "position": [c.position for c in checkpoints],
            "state": pa.array([c.state for c in checkpoints], pa.binary()),
            "ts_updated": pa.array([now] * len(checkpoints), pa.timestamp("us", tz="UTC")),
        })
        prepared.append((TABLES["checkpoints"], cp))
    return prepared


class Warehouse(ABC):
    """Where bars, dead letters, checkpoints and analytics results are kept."""

    url: str

    @abstractmethod
    def commit(self, writes: dict[str, pa.Table], checkpoints: list[Checkpoint] = ()) -> None:  # type: ignore[assignment]
        """Upsert rows into several tables and save checkpoints, all in one transaction.

        Tables without a key are appended to.
        """

    def upsert(self, table: str, data: pa.Table) -> None:
        """Upsert rows into one table."""
        self.commit({table: data})

    @abstractmethod
    def load_checkpoint(self, key: str) -> Checkpoint | None:
        """Return the saved checkpoint of a partition, or None."""

    @abstractmethod
    def query(self, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None) -> pa.Table:
        """Run one read-only statement; a write is refused with `ReadOnlyQueryError`."""

    @abstractmethod
    def read(self, table: str, *, where: dict[str, object] | None = None, start_ts: int | None = None,
             end_ts: int | None = None, order_by: str = "ts", last: int | None = None) -> pa.Table:
        """Read rows of a declared table by equality filters and a ``ts`` range (ns, end exclusive).

        A filter's value may be a list (or tuple, set) of values: the column equals any of them.
        With ``last``, the newest ``last`` rows by ``order_by``, returned oldest first.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def last_rows(self, table: str, series: Sequence[tuple[str, str, int]], last: int) -> pa.Table:
        """The newest ``last`` rows of each ``(symbol, timeframe, before_ts)`` series before its
        own ``before_ts`` (ns, exclusive), oldest first within a series, series in the order
        given: for each the rows of ``read(table, where={"symbol": ..., "timeframe": ...},
        end_ts=before_ts, last=last)``. This reads each series in turn (an index answers each
        on PostgreSQL); a backend may answer them all in one query."""
        parts = [self.read(table, where={"symbol": s, "timeframe": tf}, end_ts=t, last=last) for s, tf, t in series]
        return pa.concat_tables(parts) if parts else TABLES[table].arrow_schema.empty_table()

    def bars(self, symbol: str, timeframe: str, *, start_ts: int | None = None,
             end_ts: int | None = None, last: int | None = None) -> pa.Table:
        """Return bars of one symbol and interval, oldest first."""
        return self.read("bars", where={"symbol": symbol, "timeframe": timeframe},
                         start_ts=start_ts, end_ts=end_ts, last=last)

    def symbols(self) -> list[str]:
        """Return the symbols that have bars."""
        table = self.query("SELECT DISTINCT symbol FROM bars ORDER BY symbol")
        return [str(s) for s in table.column("symbol").to_pylist()]
