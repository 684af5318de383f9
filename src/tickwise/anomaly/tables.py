"""Warehouse tables of the anomaly stage."""

from __future__ import annotations

from tickwise.store.base import TableSpec, register_table

ANOMALIES = register_table(
    TableSpec(
        "anomalies",
        (
            ("symbol", "text"),
            ("timeframe", "text"),
            ("ts", "timestamp"),
            ("detector", "text"),
            ("score", "double"),
            ("threshold", "double"),
            ("kind", "text"),
            ("explanation", "text"),
            ("ts_detected", "timestamp"),
        ),
        key=("symbol", "timeframe", "ts", "detector"),
    )
)
