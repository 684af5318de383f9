"""The lake's datasets: which zone each lives in, its schema, its natural key.

Raw zone: ``ticks`` as received. Processed zone: ``bars``, ``signals`` and ``features``.
Every dataset is partitioned Hive-style by ``date=YYYY-MM-DD/symbol=XYZ`` (the UTC date of
its time column); the partition columns are not stored inside the files, as Athena, Trino
and Spark expect.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from tickwise.domain import BAR_SCHEMA, TICK_SCHEMA
from tickwise.exceptions import InputError

#: The Hive partition columns, in path order.
PARTITION_SCHEMA = pa.schema([("date", pa.date32()), ("symbol", pa.string())])

RAW = "raw"
PROCESSED = "processed"


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """One dataset of the lake.

    ``schema`` is None for datasets whose columns come from the data (signals, features);
    their time column is still normalised to ``timestamp[ns, UTC]``. ``key`` names the
    columns that identify a row: compaction keeps the last row written per key (an empty
    key means every column).

    Examples
    --------
    >>> DATASETS["bars"].path
    'processed/bars'
    """

    name: str
    zone: str
    time_column: str
    key: tuple[str, ...]
    schema: pa.Schema | None = None

    @property
    def path(self) -> str:
        return f"{self.zone}/{self.name}"

    def file_schema(self) -> pa.Schema | None:
        """Columns stored inside a file: the schema without the ``symbol`` partition column."""
        if self.schema is None:
            return None
        return pa.schema([f for f in self.schema if f.name != "symbol"])


DATASETS: dict[str, DatasetSpec] = {
    "ticks": DatasetSpec("ticks", RAW, "ts_event", (), TICK_SCHEMA),
    "bars": DatasetSpec("bars", PROCESSED, "ts", ("timeframe", "ts"), BAR_SCHEMA),
    "signals": DatasetSpec("signals", PROCESSED, "ts", ("timeframe", "ts", "rule")),
    "features": DatasetSpec("features", PROCESSED, "ts", ("timeframe", "ts")),
}


def dataset_spec(name: str) -> DatasetSpec:
    """Return the spec of a dataset by name.

    Examples
    --------
    >>> dataset_spec("ticks").zone
    'raw'
    """
    spec = DATASETS.get(name)
    if spec is None:
        raise InputError(f"dataset must be one of {sorted(DATASETS)}, was {name!r}")
    return spec


def _plain_type(dtype: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return pa.string()
    if pa.types.is_large_binary(dtype) or pa.types.is_binary_view(dtype):
        return pa.binary()
    if pa.types.is_timestamp(dtype):
        return pa.timestamp("ns", tz="UTC")
    return dtype


def _declared_types(name: str) -> dict[str, pa.DataType]:
    """Column types of the warehouse table of the same name, when one is declared."""
    from tickwise.store.base import ARROW_TYPES, TABLES

    spec = TABLES.get(name)
    return {c: ARROW_TYPES[t] for c, t in spec.columns} if spec is not None else {}


def conform_table(spec: DatasetSpec, data: pa.Table | pl.DataFrame) -> pa.Table:
    """Cast data to a dataset's columns (fixed schema) or to plain Arrow types (free schema).

    Strings become ``string``, timestamps ``timestamp[ns, UTC]``; an integer time column is
    read as nanoseconds since the epoch unless the schema says it is an integer. A free-schema
    dataset named like a declared warehouse table (``signals``) takes that table's column types.

    Examples
    --------
    >>> t = pa.table({"symbol": ["A"], "ts_event": [1], "price": [1.0], "size": [2.0]})
    >>> conform_table(DATASETS["ticks"], t).schema.names
    ['symbol', 'ts_event', 'price', 'size', 'id']
    """
    table = data.to_arrow() if isinstance(data, pl.DataFrame) else data
    if "symbol" not in table.column_names:
        raise InputError(f"lake dataset {spec.name} needs a 'symbol' column, was {table.column_names}")
    if spec.time_column not in table.column_names:
        raise InputError(
            f"lake dataset {spec.name} needs a {spec.time_column!r} column, was {table.column_names}"
        )
    if spec.schema is not None:
        columns = []
        for field in spec.schema:
            if field.name in table.column_names:
                col = table.column(field.name)
                if pa.types.is_timestamp(field.type) and pa.types.is_integer(col.type):
                    col = col.cast(pa.timestamp("ns", tz="UTC"))
                elif pa.types.is_timestamp(field.type) and pa.types.is_timestamp(col.type):
                    col = col.cast(pa.timestamp(col.type.unit, tz="UTC"))
                columns.append(col.cast(field.type))
            elif field.nullable:
                columns.append(pa.nulls(table.num_rows, field.type))
            else:
                raise InputError(
                    f"lake dataset {spec.name} needs a {field.name!r} column, was {table.column_names}"
                )
        return pa.table(columns, schema=spec.schema)
    declared = _declared_types(spec.name)
    fields, columns = [], []
    for name, col in zip(table.column_names, table.columns, strict=True):
        target = _plain_type(col.type)
        if name == spec.time_column and pa.types.is_integer(col.type):
            target = pa.timestamp("ns", tz="UTC")
        elif name in declared and not pa.types.is_timestamp(declared[name]):
            # a batch whose column is all null still gets the declared type
            target = declared[name]
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp(col.type.unit, tz="UTC"))
        columns.append(col.cast(target))
        fields.append(pa.field(name, target))
    return pa.table(columns, schema=pa.schema(fields))
