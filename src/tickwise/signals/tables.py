"""Warehouse tables of the signals package."""

from __future__ import annotations

from tickwise.store.base import TableSpec, register_table

SIGNALS_TABLE = register_table(
    TableSpec(
        "signals",
        (
            ("symbol", "text"),
            ("timeframe", "text"),
            ("ts", "timestamp"),
            ("rule", "text"),
            ("signal", "text"),
            ("reason", "text"),
            ("price", "double"),
            ("fast", "double"),
            ("slow", "double"),
            ("volume_ratio", "double"),
        ),
        key=("symbol", "timeframe", "ts", "rule"),
    )
)
