"""Reading warehouse tables for the API: tolerant of tables that do not exist yet.

Analytics tables (``signals``, ``forecasts``, ``anomalies``) are created by other packages
when they first write; until then the API answers with an empty list instead of an error.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from typing import Any

import pyarrow as pa

from tickwise.exceptions import InputError
from tickwise.store.base import TABLES, Warehouse

#: Symbols the API accepts in paths and filters (letters, digits and ``. _ - ^ = :``).
SYMBOL_PATTERN = r"^[A-Za-z0-9^][A-Za-z0-9._\-^=:]{0,31}$"
_SYMBOL_RE = re.compile(SYMBOL_PATTERN)
_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_NS_MIN = -(2**63) + 1
_NS_MAX = 2**63 - 1


def check_symbol(symbol: str) -> str:
    """Return a symbol if it is well formed, else raise `InputError`.

    Examples
    --------
    >>> check_symbol("AAPL")
    'AAPL'
    """
    if not _SYMBOL_RE.match(symbol):
        raise InputError(
            "symbol must be 1-32 letters, digits or . _ - ^ = :, starting with a letter or digit, "
            f"was {symbol!r}"
        )
    return symbol


def to_ns(value: dt.datetime | None) -> int | None:
    """Convert a datetime (naive means UTC) to int nanoseconds since the epoch, or None.

    Examples
    --------
    >>> to_ns(dt.datetime(1970, 1, 1, 0, 0, 1))
    1000000000
    """
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if not _NS_MIN <= ns <= _NS_MAX:
        raise InputError(f"time must be between 1677-09-22 and 2262-04-11, was {value.isoformat()}")
    return ns


def to_records(table: pa.Table) -> list[dict[str, Any]]:
    """Turn an Arrow table into JSON-ready rows (timestamps stay datetimes; NaN becomes None).

    Examples
    --------
    >>> to_records(pa.table({"x": [1.0, float("nan")]}))
    [{'x': 1.0}, {'x': None}]
    """
    for i, f in enumerate(table.schema):
        # nanosecond timestamps come out of Arrow as pandas objects; microseconds as datetimes
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns":
            table = table.set_column(i, f.name, table.column(i).cast(pa.timestamp("us", tz=f.type.tz or "UTC"),
                                                                    safe=False))
    rows = table.to_pylist()
    floats = [f.name for f in table.schema if pa.types.is_floating(f.type)]
    if floats:
        for row in rows:
            for name in floats:
                v = row[name]
                if v is not None and v != v:
                    row[name] = None
    return rows


def warm_up() -> None:
    """Run `to_records` once on a timestamped row, so the first real answer does not pay it.

    The first conversion of a time-zoned Arrow timestamp loads the time-zone machinery
    (about 150 ms), which would otherwise land on the first stream event or request.
    """
    to_records(pa.table({"ts": pa.array([0], pa.timestamp("ns", tz="UTC")), "x": [1.0]}))


def _literal(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"literal must be str or int, was {type(value).__name__}")


class TableReader:
    """Read rows of warehouse tables by symbol, timeframe and time range.

    Declared tables are read through `Warehouse.read`; a table that exists in the database
    but is not declared in this process (another package created it) is read with a
    generated read-only SELECT; a table that does not exist reads as empty.

    Parameters
    ----------
    warehouse
        Where the tables live.
    ttl_s
        How long the list of existing tables is trusted before it is read again.

    Examples
    --------
    >>> import tempfile, os
    >>> from tickwise.store import open_warehouse
    >>> wh = open_warehouse("duckdb:///" + os.path.join(tempfile.mkdtemp(), "w.duckdb"))
    >>> TableReader(wh).rows("forecasts", symbol="AAPL", limit=5)
    []
    """

    def __init__(self, warehouse: Warehouse, *, ttl_s: float = 2.0) -> None:
        self.warehouse = warehouse
        self.ttl_s = ttl_s
        self._tables: frozenset[str] = frozenset()
        self._columns: dict[str, tuple[str, ...]] = {}
        self._read_at = -1e9
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._read_at < self.ttl_s:
            return
        with self._lock:
            if now - self._read_at < self.ttl_s:
                return
            result = self.warehouse.query(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema NOT IN ('information_schema', 'pg_catalog')"
            )
            columns: dict[str, list[str]] = {}
            for table, column in zip(
                result.column("table_name").to_pylist(), result.column("column_name").to_pylist(), strict=True
            ):
                columns.setdefault(str(table), []).append(str(column))
            self._columns = {k: tuple(v) for k, v in columns.items()}
            self._tables = frozenset(self._columns)
            self._read_at = now

    def exists(self, table: str) -> bool:
        """Return whether a table exists in the warehouse now (checked at most every ``ttl_s``)."""
        self._refresh()
        return table in self._tables

    def columns(self, table: str) -> tuple[str, ...]:
        self._refresh()
        return self._columns.get(table, ())

    def rows(
        self,
        table: str,
        *,
        symbol: str | None = None,
        timeframe: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int,
        where: dict[str, object] | None = None,
    ) -> list[dict[str, Any]]:
        """Return the newest ``limit`` rows matching the filters (``where``: more columns' values), oldest first."""
        return to_records(self.table(table, symbol=symbol, timeframe=timeframe,
                                     start_ns=start_ns, end_ns=end_ns, limit=limit, where=where))

    def table(
        self,
        table: str,
        *,
        symbol: str | None = None,
        timeframe: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int,
        where: dict[str, object] | None = None,
    ) -> pa.Table:
        """Like `rows`, as an Arrow table (empty with no columns when the table is missing, or
        when ``where`` names a column the table does not have)."""
        if not self.exists(table):
            return pa.table({})
        columns = self.columns(table)
        if where and any(k not in columns for k in where):
            return pa.table({})
        where = dict(where or {})
        if symbol is not None and "symbol" in columns:
            where["symbol"] = symbol
        if timeframe is not None and "timeframe" in columns:
            where["timeframe"] = timeframe
        has_ts = "ts" in columns
        spec = TABLES.get(table)
        if spec is not None and all(c in columns for c in spec.column_names):
            return self.warehouse.read(
                table, where=where, start_ts=start_ns if has_ts else None,
                end_ts=end_ns if has_ts else None, order_by="ts" if has_ts else spec.column_names[0],
                last=limit,
            )
        if not _IDENT_RE.match(table):
            return pa.table({})
        clauses = [f'"{k}" = {_literal(v)}' for k, v in where.items()]
        if has_ts and start_ns is not None:
            clauses.append(f"\"ts\" >= to_timestamp({start_ns / 1e9!r})")
        if has_ts and end_ns is not None:
            clauses.append(f"\"ts\" < to_timestamp({end_ns / 1e9!r})")
        sql = f'SELECT * FROM "{table}"'
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if has_ts:
            sql = f'SELECT * FROM ({sql} ORDER BY "ts" DESC LIMIT {int(limit)}) AS t ORDER BY "ts"'
        else:
            sql += f" LIMIT {int(limit)}"
        return self.warehouse.query(sql, max_rows=limit)
