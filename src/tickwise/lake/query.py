"""Read-only SQL over the lake, with datasets as table names.

DuckDB runs the SQL; each dataset the statement names (``ticks``, ``bars``, ``signals``,
``features``) is handed to it as a `pyarrow.dataset.Dataset` view over the visible Parquet
files, local or on S3. DuckDB pushes column selections and filters (``symbol``, ``date``,
time ranges) down into the scan, so partitions a query does not need are not read. No
DuckDB extension is needed, so this works offline. The connection has no file-system
access: only the lake's datasets can be read, and nothing can be written.
"""

from __future__ import annotations

import math
import re
import threading
from importlib import resources

import duckdb
import pyarrow as pa

from tickwise.exceptions import InputError, NotFoundError, ReadOnlyQueryError
from tickwise.lake.datasets import DATASETS
from tickwise.lake.lake import Lake

_ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def check_read_only(sql: str) -> str:
    """Return the one statement in ``sql`` if it only reads; raise otherwise.

    Examples
    --------
    >>> check_read_only("SELECT 1;")
    'SELECT 1'
    >>> check_read_only("DELETE FROM bars")
    Traceback (most recent call last):
    ...
    tickwise.exceptions.ReadOnlyQueryError: lake queries are read-only: expected one SELECT statement, was DELETE
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"SQL does not parse: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise InputError(f"expected exactly one SQL statement, was {len(statements)}")
    kind = statements[0].type
    if kind not in _ALLOWED:
        raise ReadOnlyQueryError(
            f"lake queries are read-only: expected one SELECT statement, was {kind.name}"
        )
    return statements[0].query.strip().rstrip(";").strip()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def connect(lake: Lake, sql: str, *, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB connection with views for the datasets ``sql`` mentions."""
    con = duckdb.connect(":memory:", config={"enable_external_access": False})
    con.execute("SET TimeZone = 'UTC'")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    for name in DATASETS:
        if re.search(rf"\b{name}\b", sql, flags=re.IGNORECASE):
            dataset = lake.dataset(name)
            if dataset is not None:
                con.register(name, dataset)
    return con


def query(lake: Lake, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None,
          threads: int | None = None) -> pa.Table:
    """Run one read-only SQL statement over the lake and return the result.

    Parameters
    ----------
    lake
        The lake to read.
    sql
        One ``SELECT`` (or ``EXPLAIN``); the tables are the dataset names.
    max_rows
        Return at most this many rows.
    timeout_s
        Interrupt the query after this many seconds (`InputError`).

    Examples
    --------
    >>> import tempfile
    >>> from tickwise.lake import open_lake
    >>> lake = open_lake("file://" + tempfile.mkdtemp())
    >>> _ = lake.write("ticks", pa.table({"symbol": ["A", "B"], "ts_event": [1, 2],
    ...                                    "price": [1.0, 2.0], "size": [5.0, 6.0]}))
    >>> query(lake, "SELECT symbol, sum(size) AS size FROM ticks GROUP BY 1 ORDER BY 1").to_pylist()
    [{'symbol': 'A', 'size': 5.0}, {'symbol': 'B', 'size': 6.0}]
    """
    statement = check_read_only(sql)
    if max_rows is not None and max_rows < 0:
        raise InputError(f"max_rows must be >= 0, was {max_rows}")
    con = connect(lake, statement, threads=threads)
    timer = None
    if timeout_s is not None:
        timer = threading.Timer(timeout_s, con.interrupt)
        timer.start()
    try:
        reader = con.sql(statement).to_arrow_reader(batch_size=65_536)
        batches, rows = [], 0
        for batch in reader:
            if max_rows is not None and rows + batch.num_rows >= max_rows:
                batches.append(batch.slice(0, max_rows - rows))
                rows = max_rows
                break
            batches.append(batch)
            rows += batch.num_rows
        return pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.CatalogException as exc:
        present = [t.name for t in lake.tables()]
        raise NotFoundError(
            f"{_first_line(exc)}; the lake's tables with data are {present or 'none yet'}"
        ) from None
    except duckdb.InterruptException:
        raise InputError(f"lake query ran past its limit of {timeout_s} s") from None
    except duckdb.Error as exc:
        raise InputError(f"lake query failed: {_first_line(exc)}") from None
    finally:
        if timer is not None:
            timer.cancel()
        con.close()


def sma_cross_sql(*, fast: int = 9, slow: int = 21, volume_window: int = 20,
                  volume_factor: float = 1.5, where: str = "TRUE") -> str:
    """Return the SQL that computes the ``sma_cross`` signals over the lake's ``bars``.

    The text is ``tickwise/lake/sql/sma_cross.sql`` with its parameters filled in; ``where``
    is a SQL condition on the bars (e.g. ``symbol = 'AAPL'``). The result has the columns of
    the ``signals`` table and the same rows as `tickwise.signals.sma_cross_signals`.

    Examples
    --------
    >>> "PARTITION BY symbol, timeframe" in sma_cross_sql(fast=5, slow=10)
    True
    """
    for name, value in (("fast", fast), ("slow", slow), ("volume_window", volume_window)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be an integer >= 1, was {value!r}")
    if fast >= slow:
        raise InputError(f"fast must be < slow, was fast={fast}, slow={slow}")
    if not (math.isfinite(volume_factor) and volume_factor >= 0):
        raise InputError(f"volume_factor must be finite and >= 0, was {volume_factor!r}")
    warmup = max(slow, volume_window)
    text = resources.files("tickwise.lake").joinpath("sql/sma_cross.sql").read_text()
    values = {
        "{fast}": str(fast),
        "{slow}": str(slow),
        "{volume_window}": str(volume_window),
        "{volume_factor_text}": f"{float(volume_factor):g}",
        # a DOUBLE literal, so the products are computed as in the Python rule
        "{volume_factor}": f"CAST({float(volume_factor)!r} AS DOUBLE)",
        "{warmup_bars}": str(warmup + 1),
        "{warmup}": str(warmup),
        "{where}": where,
    }
    for name, value in values.items():
        text = text.replace(name, value)
    return text
