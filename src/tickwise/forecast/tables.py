"""Warehouse tables of the forecast package: live forecasts and the model registry."""

from __future__ import annotations

from tickwise.store.base import TableSpec, register_table

FORECASTS = register_table(
    TableSpec(
        "forecasts",
        (
            ("symbol", "text"),
            ("timeframe", "text"),
            ("ts", "timestamp"),  # the start of the bar being predicted
            ("model", "text"),
            ("version", "text"),
            ("open", "double"),
            ("high", "double"),
            ("low", "double"),
            ("close", "double"),
            ("lo_80", "double"),
            ("hi_80", "double"),
            ("lo_95", "double"),
            ("hi_95", "double"),
            ("ts_created", "timestamp"),
        ),
        key=("symbol", "timeframe", "ts", "model"),
    )
)

MODELS = register_table(
    TableSpec(
        "models",
        (
            ("name", "text"),
            ("version", "bigint"),
            ("params", "text"),  # JSON
            ("train_start", "timestamp"),
            ("train_end", "timestamp"),
            ("metrics", "text"),  # JSON
            ("artifact", "blob"),
            ("promoted", "boolean"),
            ("ts_created", "timestamp"),
        ),
        key=("name", "version"),
    )
)
