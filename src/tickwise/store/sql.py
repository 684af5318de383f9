"""SQL text shared by the warehouse backends: DDL, upserts and the read-only check."""

from __future__ import annotations

import re

from tickwise.exceptions import ReadOnlyQueryError
from tickwise.store.base import TableSpec

_WRITE_WORDS = re.compile(
    r"\b(insert|update|delete|merge|create|drop|alter|truncate|grant|revoke|copy|attach|detach|"
    r"install|load|vacuum|checkpoint|call|set|reset|pragma|export|import|comment|refresh|lock|do)\b",
    re.IGNORECASE,
)


def refuse_writes(sql: str) -> str:
    """Return one statement stripped of a trailing semicolon, or refuse anything but a read.

    The backend enforces read-only too (a read-only transaction or connection); this check
    gives the clear message first.

    Examples
    --------
    >>> refuse_writes("SELECT 1;")
    'SELECT 1'
    >>> refuse_writes("DROP TABLE bars")
    Traceback (most recent call last):
    ...
    tickwise.exceptions.ReadOnlyQueryError: only read-only statements (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN) are allowed, was DROP
    """
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise ReadOnlyQueryError("a SQL statement is needed, was empty")
    if ";" in _strip_literals(text):
        raise ReadOnlyQueryError("only one statement at a time is allowed, was several")
    first = text.split(None, 1)[0].upper()
    if first not in ("SELECT", "WITH", "SHOW", "DESCRIBE", "EXPLAIN", "VALUES", "FROM", "SUMMARIZE", "TABLE"):
        raise ReadOnlyQueryError(
            "only read-only statements (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN) are allowed, "
            f"was {first}"
        )
    if first == "WITH" and _WRITE_WORDS.search(_strip_literals(text)):
        word = _WRITE_WORDS.search(_strip_literals(text))
        raise ReadOnlyQueryError(
            f"only read-only statements are allowed, found {word.group(0).upper() if word else 'a write'}"
        )
    return text


def _strip_literals(sql: str) -> str:
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_table(spec: TableSpec, types: dict[str, str]) -> str:
    cols = ", ".join(f"{quote(c)} {types[t]}" for c, t in spec.columns)
    key = f", PRIMARY KEY ({', '.join(quote(k) for k in spec.key)})" if spec.key else ""
    return f"CREATE TABLE IF NOT EXISTS {quote(spec.name)} ({cols}{key})"


def upsert_from(spec: TableSpec, source: str) -> str:
    cols = ", ".join(quote(c) for c in spec.column_names)
    if not spec.key:
        return f"INSERT INTO {quote(spec.name)} ({cols}) SELECT {cols} FROM {source}"
    updates = ", ".join(
        f"{quote(c)} = EXCLUDED.{quote(c)}" for c in spec.column_names if c not in spec.key
    )
    conflict = ", ".join(quote(k) for k in spec.key)
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    return (
        f"INSERT INTO {quote(spec.name)} ({cols}) SELECT {cols} FROM {source} "
        f"ON CONFLICT ({conflict}) {action}"
    )


def select_rows(
    spec: TableSpec,
    *,
    where: dict[str, object] | None,
    start_ts: int | None,
    end_ts: int | None,
    order_by: str,
    last: int | None,
    placeholder: str,
) -> tuple[str, list[object]]:
    """Build a parameterised SELECT over one declared table."""
    names = spec.column_names
    clauses, params = [], []
    for col, value in (where or {}).items():
        if col not in names:
            raise ValueError(f"filter column must be a column of {spec.name}, was {col!r}")
        if isinstance(value, list | tuple | set | frozenset):  # any of the values
            values = list(value)
            clauses.append(f"{quote(col)} IN ({', '.join([placeholder] * len(values))})" if values else "FALSE")
            params.extend(values)
        else:
            clauses.append(f"{quote(col)} = {placeholder}")
            params.append(value)
    if order_by not in names:
        raise ValueError(f"order_by must be a column of {spec.name}, was {order_by!r}")
    if start_ts is not None:
        clauses.append(f"{quote('ts')} >= {placeholder}")
        params.append(start_ts)
    if end_ts is not None:
        clauses.append(f"{quote('ts')} < {placeholder}")
        params.append(end_ts)
    sql = f"SELECT * FROM {quote(spec.name)}"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    if last is not None:
        sql = f"SELECT * FROM ({sql} ORDER BY {quote(order_by)} DESC LIMIT {int(last)}) AS t"
    sql += f" ORDER BY {quote(order_by)}"
    return sql, params
