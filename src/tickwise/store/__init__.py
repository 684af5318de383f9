"""Warehouses (``duckdb://``, ``postgresql://``) and the Parquet lake."""

from __future__ import annotations

from tickwise.config import parse_backend_url
from tickwise.store.base import TABLES, Checkpoint, TableSpec, Warehouse, register_table

__all__ = ["TABLES", "Checkpoint", "TableSpec", "Warehouse", "open_warehouse", "register_table"]


def open_warehouse(url: str, *, read_only: bool = False) -> Warehouse:
    """Open the warehouse named by a URL and create its tables if needed."""
    parsed = parse_backend_url("warehouse", url)
    if parsed.scheme == "duckdb":
        from tickwise.store.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(parsed.path, read_only=read_only, url=url)
    from tickwise.store.postgres import PostgresWarehouse

    return PostgresWarehouse(url, read_only=read_only)
