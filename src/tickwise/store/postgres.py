"""The scale-out warehouse: PostgreSQL through psycopg 3.

Writes go through binary ``COPY`` into a temporary table and one
``INSERT … ON CONFLICT DO UPDATE`` per table, all in one transaction with the checkpoints.
Reads for `query` run in a ``READ ONLY`` transaction with a statement timeout, so the
database itself refuses writes.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg
import pyarrow as pa
from psycopg import sql as psql

from tickwise.exceptions import BackendError, InputError, ReadOnlyQueryError
from tickwise.store.base import TABLES, Checkpoint, TableSpec, Warehouse, conform, prepare_writes
from tickwise.store.sql import create_table, refuse_writes, select_rows, upsert_from

_TYPES = {
    "text": "TEXT",
    "timestamp": "TIMESTAMPTZ",
    "double": "DOUBLE PRECISION",
    "bigint": "BIGINT",
    "boolean": "BOOLEAN",
    "blob": "BYTEA",
}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _arrow_from_rows(names: list[str], rows: list[tuple]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    return pa.table({n: pa.array(list(c)) for n, c in zip(names, columns, strict=True)})


class PostgresWarehouse(Warehouse):
    """Tables in a PostgreSQL database.

    Examples
    --------
    >>> wh = PostgresWarehouse("postgresql://postgres@127.0.0.1:5432/test")  # doctest: +SKIP
    """

    def __init__(self, url: str, *, read_only: bool = False, retries: int = 5) -> None:
        self.url = url
        self.read_only = read_only
        self._lock = threading.RLock()
        self._known: set[str] = set()
        self._conn = self._connect(retries)
        if not read_only:
            self.ensure_tables()

    def _connect(self, retries: int) -> psycopg.Connection:
        delay = 0.1
        for attempt in range(retries):
            try:
                return psycopg.connect(self.url.replace("postgres://", "postgresql://", 1), autocommit=False)
            except psycopg.OperationalError as exc:
                if attempt == retries - 1:
                    raise BackendError(f"cannot connect to PostgreSQL at {self.url}: {str(exc).strip()}") from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def ensure_tables(self) -> None:
        with self._lock:
            missing = [s for s in TABLES.values() if s.name not in self._known]
            if not missing:
                return
            with self._conn.transaction():
                for spec in missing:
                    self._conn.execute(create_table(spec, _TYPES))  # type: ignore[arg-type]
            self._known.update(s.name for s in missing)

    def _spec(self, table: str) -> TableSpec:
        spec = TABLES.get(table)
        if spec is None:
            raise InputError(f"table must be one of {sorted(TABLES)}, was {table!r}")
        return spec

    def _copy_upsert(self, cur: psycopg.Cursor, spec: TableSpec, table: pa.Table) -> None:
        tmp = f"_tw_in_{spec.name}"
        cur.execute(psql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
                    .format(psql.Identifier(tmp), psql.Identifier(spec.name)))
        cols = psql.SQL(", ").join(psql.Identifier(c) for c in spec.column_names)
        copy_sql = psql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(psql.Identifier(tmp), cols)
        with cur.copy(copy_sql) as copy:
            copy.set_types([_TYPES[t].lower() for _, t in spec.columns])
            for row in zip(*(table.column(c).to_pylist() for c in spec.column_names), strict=True):
                copy.write_row(row)
        cur.execute(upsert_from(spec, f'"{tmp}"'))  # type: ignore[arg-type]

    def commit(self, writes: dict[str, pa.Table], checkpoints: list[Checkpoint] = ()) -> None:  # type: ignore[assignment]
        if self.read_only:
            raise BackendError("warehouse was opened read-only")
        prepared = prepare_writes(writes, checkpoints)
        if not prepared:
            return
        with self._lock:
            self.ensure_tables()
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    for spec, table in prepared:
                        self._copy_upsert(cur, spec, table)
            except psycopg.Error as exc:
                raise BackendError(f"warehouse commit failed: {str(exc).strip()}") from exc

    def load_checkpoint(self, key: str) -> Checkpoint | None:
        with self._lock, self._conn.transaction():
            row = self._conn.execute(
                "SELECT key, position, state FROM checkpoints WHERE key = %s", [key]
            ).fetchone()
        return Checkpoint(row[0], row[1], bytes(row[2])) if row else None

    def query(self, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None) -> pa.Table:
        text = refuse_writes(sql)
        with self._lock:
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    cur.execute("SET TRANSACTION READ ONLY")
                    if timeout_s:
                        cur.execute(psql.SQL("SET LOCAL statement_timeout = {}").format(int(timeout_s * 1000)))
                    cur.execute(text)  # type: ignore[arg-type]
                    names = [d.name for d in cur.description or []]
                    rows = cur.fetchmany(max_rows) if max_rows is not None else cur.fetchall()
            except psycopg.errors.ReadOnlySqlTransaction:
                raise ReadOnlyQueryError("only read-only statements are allowed") from None
            except psycopg.errors.QueryCanceled:
                raise InputError(f"query took longer than {timeout_s} s and was stopped") from None
            except psycopg.Error as exc:
                raise InputError(f"SQL error: {str(exc).strip().splitlines()[0]}") from None
        return _arrow_from_rows(names, rows)

    def read(self, table: str, *, where: dict[str, object] | None = None, start_ts: int | None = None,
             end_ts: int | None = None, order_by: str = "ts", last: int | None = None) -> pa.Table:
        spec = self._spec(table)
        sql, params = select_rows(spec, where=where, start_ts=start_ts, end_ts=end_ts,
                                  order_by=order_by, last=last, placeholder="%s")
        n_where = len(where or {})
        params = [_EPOCH + dt.timedelta(microseconds=p // 1000) if i >= n_where and isinstance(p, int) else p
                  for i, p in enumerate(params)]
        with self._lock:
            self.ensure_tables() if not self.read_only else None
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    cur.execute(sql, params)  # type: ignore[arg-type]
                    rows = cur.fetchall()
            except psycopg.errors.UndefinedTable:
                return spec.arrow_schema.empty_table()
        if not rows:
            return spec.arrow_schema.empty_table()
        return conform(spec, _arrow_from_rows(spec.column_names, rows))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
