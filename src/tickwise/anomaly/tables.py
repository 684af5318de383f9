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

ANOMALY_STATE = register_table(
    TableSpec(
        "anomaly_state",
        (
            ("timeframe", "text"),
            ("symbol", "text"),
            ("detector", "text"),
            ("ts", "timestamp"),  # the last bar the state has learned
            ("config", "text"),  # `MultiSymbolDetector.config` of the detector that saved it
            ("state", "blob"),  # `MultiSymbolDetector.export_state`: a NumPy .npz
            ("ts_updated", "timestamp"),
        ),
        key=("timeframe", "symbol", "detector"),
    )
)
