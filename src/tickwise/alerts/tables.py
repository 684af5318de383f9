"""The ``alerts`` table: one row per (alert, notifier) with its delivery status."""

from __future__ import annotations

from tickwise.store.base import TableSpec, register_table

ALERTS = register_table(
    TableSpec(
        "alerts",
        (
            ("alert_id", "text"),
            ("notifier", "text"),
            ("rule", "text"),
            ("symbol", "text"),
            ("timeframe", "text"),
            ("ts", "timestamp"),
            ("detector", "text"),
            ("kind", "text"),
            ("explanation", "text"),
            ("suppressed", "bigint"),
            ("status", "text"),
            ("attempts", "bigint"),
            ("last_error", "text"),
            ("ts_created", "timestamp"),
            ("ts_updated", "timestamp"),
        ),
        key=("alert_id", "notifier"),
    )
)
