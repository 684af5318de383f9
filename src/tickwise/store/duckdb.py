"""The embedded warehouse: one DuckDB file.

DuckDB lets one process write a file; others may open it read-only only while no writer
holds it. The process running `tickwise up` therefore shares its `DuckDBWarehouse` with
the API it serves, and `tickwise query` from another shell says so if the file is locked.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from tickwise.exceptions import BackendError, InputError, ReadOnlyQueryError
from tickwise.store.base import TABLES, Checkpoint, TableSpec, Warehouse, prepare_writes
from tickwise.store.sql import create_table, quote, refuse_writes, select_rows, upsert_from

_TYPES = {
    "text": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
    "double": "DOUBLE",
    "bigint": "BIGINT",
    "boolean": "BOOLEAN",
    "blob": "BLOB",
}

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def ns_to_datetime(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


class DuckDBWarehouse(Warehouse):
    """Tables in one DuckDB file, safe to share between threads of one process.

    Examples
    --------
    >>> import tempfile, os, pyarrow as pa
    >>> wh = DuckDBWarehouse(os.path.join(tempfile.mkdtemp(), "w.duckdb"))
    >>> wh.query("SELECT count(*) AS n FROM bars").column("n").to_pylist()
    [0]
    """

    def __init__(self, path: str, *, read_only: bool = False, url: str | None = None) -> None:
        self.url = url or f"duckdb:///{path}"
        self.path = Path(path)
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise InputError(f"warehouse file must exist to be read, was {str(self.path)!r} (run tickwise up or tickwise import first)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # the warehouse never needs other files: SQL sent to `query` cannot read or write them
            self._con = duckdb.connect(str(self.path), read_only=read_only,
                                       config={"enable_external_access": False})
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise BackendError(
                    f"warehouse {self.path} is in use by another tickwise process (DuckDB allows one "
                    "writer); stop it, query through its API (tickwise serve / GET /api/v1/query), or "
                    "use PostgreSQL for concurrent access"
                ) from None
            raise BackendError(f"cannot open warehouse {self.path}: {exc}") from None
        self._lock = threading.RLock()
        self._known: set[str] = set()
        self._con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            self.ensure_tables()

    def ensure_tables(self) -> None:
        with self._lock:
            for spec in list(TABLES.values()):
                if spec.name not in self._known:
                    self._con.execute(create_table(spec, _TYPES))
                    self._known.add(spec.name)

    def _spec(self, table: str) -> TableSpec:
        spec = TABLES.get(table)
        if spec is None:
            raise InputError(f"table must be one of {sorted(TABLES)}, was {table!r}")
        return spec

    def commit(self, writes: dict[str, pa.Table], checkpoints: list[Checkpoint] = ()) -> None:  # type: ignore[assignment]
        if self.read_only:
            raise BackendError(f"warehouse {self.path} was opened read-only")
        prepared = prepare_writes(writes, checkpoints)
        if not prepared:
            return
        with self._lock:
            self.ensure_tables()
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                for i, (spec, table) in enumerate(prepared):
                    view = f"_tw_in_{i}"
                    con.register(view, table)
                    try:
                        con.execute(upsert_from(spec, view))
                    finally:
                        con.unregister(view)
                con.execute("COMMIT")
            except Exception as exc:
                con.execute("ROLLBACK")
                raise BackendError(f"warehouse commit failed: {exc}") from exc

    def load_checkpoint(self, key: str) -> Checkpoint | None:
        with self._lock:
            row = self._con.execute(
                "SELECT key, position, state FROM checkpoints WHERE key = ?", [key]
            ).fetchone()
        return Checkpoint(row[0], row[1], bytes(row[2])) if row else None

    def query(self, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None) -> pa.Table:
        text = refuse_writes(sql)
        with self._lock:
            cur = self._con.cursor()
        timer = threading.Timer(timeout_s, cur.interrupt) if timeout_s else None
        try:
            if timer:
                timer.start()
            try:
                result = cur.execute(text)
            except (duckdb.CatalogException, duckdb.ParserException, duckdb.BinderException) as exc:
                raise InputError(f"SQL error: {str(exc).splitlines()[0]}") from None
            except duckdb.InterruptException:
                raise InputError(f"query took longer than {timeout_s} s and was stopped") from None
            except duckdb.Error as exc:
                if "read-only" in str(exc).lower():
                    raise ReadOnlyQueryError("only read-only statements are allowed") from None
                raise InputError(f"SQL error: {str(exc).splitlines()[0]}") from None
            if max_rows is None:
                return result.to_arrow_table()
            reader = result.to_arrow_reader(min(max_rows, 100_000))
            batches, n = [], 0
            for batch in reader:
                batches.append(batch)
                n += batch.num_rows
                if n >= max_rows:
                    break
            table = pa.Table.from_batches(batches, schema=reader.schema)
            return table.slice(0, max_rows)
        finally:
            if timer:
                timer.cancel()
            cur.close()

    def read(self, table: str, *, where: dict[str, object] | None = None, start_ts: int | None = None,
             end_ts: int | None = None, order_by: str = "ts", last: int | None = None) -> pa.Table:
        spec = self._spec(table)
        sql, params = select_rows(spec, where=where, start_ts=start_ts, end_ts=end_ts,
                                  order_by=order_by, last=last, placeholder="?")
        params = [ns_to_datetime(p) if isinstance(p, int) and i >= len(where or {}) else p
                  for i, p in enumerate(params)]
        with self._lock:
            cur = self._con.cursor()
        try:
            try:
                return cur.execute(sql, params).to_arrow_table()
            except duckdb.CatalogException:
                return spec.arrow_schema.empty_table()
        finally:
            cur.close()

    def last_rows(self, table: str, series: Sequence[tuple[str, str, int]], last: int) -> pa.Table:
        """All series in one query (DuckDB scans the table once, where a query per series
        scans it each time)."""
        spec = self._spec(table)
        if not {"symbol", "timeframe", "ts"} <= set(spec.column_names):
            raise ValueError(f"last_rows needs a table with symbol, timeframe and ts, was {table!r}")
        if not series:
            return spec.arrow_schema.empty_table()
        keys = pa.table({
            "symbol": [s for s, _, _ in series], "timeframe": [tf for _, tf, _ in series],
            "before": pa.array([ns_to_datetime(t) for _, _, t in series], pa.timestamp("us", tz="UTC")),
            "n": pa.array(range(len(series)), pa.int64()),
        })
        sql = (f"SELECT t.* FROM {quote(spec.name)} AS t JOIN __series AS k "
               "ON t.symbol = k.symbol AND t.timeframe = k.timeframe AND t.ts < k.before "
               f"QUALIFY row_number() OVER (PARTITION BY k.n ORDER BY t.ts DESC) <= {int(last)} "
               "ORDER BY k.n, t.ts")
        with self._lock:
            cur = self._con.cursor()
        try:
            cur.register("__series", keys)
            try:
                return cur.execute(sql).to_arrow_table()
            except duckdb.CatalogException:
                return spec.arrow_schema.empty_table()
        finally:
            cur.close()

    def table_exists(self, table: str) -> bool:
        with self._lock:
            row = self._con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
            ).fetchone()
        return bool(row and row[0])

    def close(self) -> None:
        with self._lock:
            self._con.close()


__all__ = ["DuckDBWarehouse", "quote"]
