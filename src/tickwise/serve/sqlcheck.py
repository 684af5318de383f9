"""Check SQL sent to ``/api/v1/query`` before it reaches the warehouse.

The route must answer questions about the warehouse's tables and nothing else: DuckDB can
read any file the server can (``read_csv('/etc/passwd')``, ``FROM 'secrets.csv'``), run SQL
held in a string (``query('...')``), attach other databases and print environment
variables. The check parses the statement with DuckDB's own parser (`duckdb.extract_statements`
for the statement type, ``json_serialize_sql`` for the parse tree) and walks the tree:

- one statement, a ``SELECT`` (``WITH``, ``FROM``-first, ``VALUES``, ``DESCRIBE``, ``SHOW``,
  ``SUMMARIZE`` are SELECTs to DuckDB), optionally under ``EXPLAIN [ANALYZE]``;
- table functions only from `ALLOWED_TABLE_FUNCTIONS` (``range``, catalog listings...);
- no table named like a file (DuckDB's replacement scans turn ``FROM 'x.csv'`` into a read);
- no scalar function from `REFUSED_FUNCTIONS` (``getenv``, ``current_setting``...).

The warehouse still runs the statement read-only; this check is the part that keeps files
and settings out of reach, and says why in one line.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import duckdb

from tickwise.exceptions import InputError, ReadOnlyQueryError

ALLOWED_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "json_each", "json_tree",
    "duckdb_tables", "duckdb_columns", "duckdb_views", "duckdb_schemas", "duckdb_types",
    "duckdb_constraints", "duckdb_indexes", "duckdb_functions", "duckdb_keywords",
    "pragma_table_info", "pragma_show",
})
REFUSED_FUNCTIONS = frozenset({
    "getenv", "current_setting", "which_secret", "read_text", "read_blob", "glob", "sniff_csv",
    "query", "query_table",
    # PostgreSQL warehouses: the server's files and other databases
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import", "dblink",
})

_EXPLAIN = re.compile(r"^\s*explain(\s+analy[sz]e)?\s+", re.IGNORECASE)
_PATH_CHARS = re.compile(r"[/\\.:~*?]")
_parser: duckdb.DuckDBPyConnection | None = None
_parser_lock = threading.Lock()


def check_read_only_sql(sql: str) -> None:
    """Refuse SQL that is not one SELECT over the warehouse's own tables.

    Raises
    ------
    ReadOnlyQueryError
        For a statement other than a SELECT (``COPY``, ``ATTACH``, ``DELETE``...) or more
        than one statement.
    InputError
        For a SELECT that reads files, other databases or settings, or that does not parse.

    Examples
    --------
    >>> check_read_only_sql("SELECT symbol, count(*) FROM bars GROUP BY 1")
    >>> check_read_only_sql("SELECT * FROM read_csv('/etc/passwd')")
    Traceback (most recent call last):
    ...
    tickwise.exceptions.InputError: table functions must be among range, generate_series, unnest and the duckdb_* catalog listings (files and other databases cannot be read through the API), was read_csv
    >>> check_read_only_sql("COPY bars TO '/tmp/bars.csv'")
    Traceback (most recent call last):
    ...
    tickwise.exceptions.ReadOnlyQueryError: only read-only statements (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN) are allowed, was COPY
    """
    inner = _EXPLAIN.sub("", sql, count=1)
    try:
        statements = duckdb.extract_statements(inner)
    except duckdb.Error as exc:
        raise InputError(f"SQL error: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        what = "empty" if not statements else f"{len(statements)} statements"
        raise ReadOnlyQueryError(f"only one statement at a time is allowed, was {what}")
    kind = statements[0].type.name
    if kind != "SELECT":
        raise ReadOnlyQueryError(
            "only read-only statements (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN) are allowed, "
            f"was {kind}"
        )
    for node in _walk(_parse_tree(inner)):
        _check_node(node)


def _parse_tree(sql: str) -> dict[str, Any]:
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(":memory:")
        row = _parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True, "error_message": "no parse tree"}
    if tree.get("error"):
        raise InputError(f"SQL error: {str(tree.get('error_message', 'cannot parse')).splitlines()[0]}")
    return tree


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_node(node: dict[str, Any]) -> None:
    kind = node.get("type")
    if kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        name = str(function.get("function_name", "")).lower()
        if name not in ALLOWED_TABLE_FUNCTIONS:
            raise InputError(
                "table functions must be among range, generate_series, unnest and the duckdb_* "
                "catalog listings (files and other databases cannot be read through the API), "
                f"was {name or 'an unnamed function'}"
            )
    elif kind in ("BASE_TABLE", "SHOW_REF"):
        name = str(node.get("table_name", "")).strip('"')
        if _PATH_CHARS.search(name):
            raise InputError(
                "tables must be the warehouse's own (bars, signals, forecasts...); files and other "
                f"databases cannot be read through the API, was {node.get('table_name')!r}"
            )
    elif node.get("class") == "FUNCTION":
        name = str(node.get("function_name", "")).lower()
        if name in REFUSED_FUNCTIONS:
            raise InputError(f"function {name}() reads the server's files, settings or environment and is refused here")
