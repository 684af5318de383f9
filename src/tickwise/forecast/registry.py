"""The model registry: every trained model versioned in the warehouse's ``models`` table.

Why the warehouse and not MLflow: the warehouse is already there in both deployments
(a DuckDB file on a laptop, PostgreSQL when scaled out), so every worker of a consumer
group sees the same promoted version through the connection it already has, and a
promotion is one transaction. A local MLflow file store would be one more dependency
and a directory that workers on other machines cannot see. Artifacts are stored without
pickle (ARIMA state as JSON, LSTM weights as a torch ``state_dict`` loaded with
``weights_only=True``), so loading a model from a shared database runs no code.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

import tickwise.forecast.tables  # noqa: F401  (declares the tables before a warehouse opens)
from tickwise.exceptions import NotFoundError
from tickwise.store.base import Warehouse


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelVersion:
    """One registered model version (``artifact`` may be empty for parameter-only models)."""

    name: str
    version: int
    params: dict[str, Any]
    train_start: int | None
    train_end: int | None
    metrics: dict[str, Any]
    promoted: bool
    ts_created: int
    artifact: bytes = field(default=b"", repr=False)


def _rows(table: pa.Table) -> list[ModelVersion]:
    raw = table.cast(pa.schema([(f.name, pa.int64() if pa.types.is_timestamp(f.type) else f.type)
                                for f in table.schema])).to_pylist()
    out = []
    for r in raw:
        out.append(ModelVersion(
            name=r["name"], version=int(r["version"]), params=json.loads(r["params"] or "{}"),
            train_start=None if r["train_start"] is None else r["train_start"] * 1000,
            train_end=None if r["train_end"] is None else r["train_end"] * 1000,
            metrics=json.loads(r["metrics"] or "{}"), promoted=bool(r["promoted"]),
            ts_created=int(r["ts_created"] or 0) * 1000, artifact=r["artifact"] or b""))
    return sorted(out, key=lambda m: (m.name, m.version))


class ModelRegistry:
    """Register, list, promote and fetch model versions in a warehouse.

    Examples
    --------
    >>> import tempfile, os
    >>> from tickwise.store import open_warehouse
    >>> wh = open_warehouse("duckdb:///" + os.path.join(tempfile.mkdtemp(), "r.duckdb"))
    >>> reg = ModelRegistry(wh)
    >>> reg.register("arima", params={"order": None}, metrics={"mae": 1.0}).version
    1
    >>> reg.promote("arima", 1).promoted
    True
    >>> wh.close()
    """

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of one model, or of all), oldest first."""
        where = {"name": name} if name else None
        return _rows(self.warehouse.read("models", where=where, order_by="version"))

    def register(self, name: str, *, params: dict[str, Any], metrics: dict[str, Any] | None = None,
                 train_start: int | None = None, train_end: int | None = None,
                 artifact: bytes = b"") -> ModelVersion:
        """Store a new version (numbered one past the newest) and return it."""
        existing = self.versions(name)
        version = ModelVersion(
            name=name, version=(existing[-1].version + 1) if existing else 1, params=params,
            train_start=train_start, train_end=train_end, metrics=metrics or {}, promoted=False,
            ts_created=time.time_ns(), artifact=artifact)
        self.warehouse.upsert("models", self._table([version]))
        return version

    def get(self, name: str, version: int) -> ModelVersion:
        for v in self.versions(name):
            if v.version == version:
                return v
        known = ", ".join(str(v.version) for v in self.versions(name)) or "none"
        raise NotFoundError(f"model {name} version {version} is not registered (versions: {known})")

    def promote(self, name: str, version: int) -> ModelVersion:
        """Make one version the promoted one of its model (the others are demoted), in one commit."""
        target = self.get(name, version)
        changed = [ModelVersion(**{**_fields(v), "promoted": v.version == target.version})
                   for v in self.versions(name)]
        self.warehouse.upsert("models", self._table(changed))
        return self.get(name, version)

    def promoted(self, name: str) -> ModelVersion | None:
        """The promoted version of a model, or None."""
        for v in self.versions(name):
            if v.promoted:
                return v
        return None

    @staticmethod
    def _table(versions: list[ModelVersion]) -> pa.Table:
        ts = pa.timestamp("ns", tz="UTC")
        return pa.table({
            "name": [v.name for v in versions],
            "version": pa.array([v.version for v in versions], pa.int64()),
            "params": [json.dumps(v.params) for v in versions],
            "train_start": pa.array([v.train_start for v in versions], ts),
            "train_end": pa.array([v.train_end for v in versions], ts),
            "metrics": [json.dumps(v.metrics) for v in versions],
            "artifact": pa.array([v.artifact for v in versions], pa.binary()),
            "promoted": [v.promoted for v in versions],
            "ts_created": pa.array([v.ts_created for v in versions], ts),
        })


def _fields(v: ModelVersion) -> dict[str, Any]:
    return {f: getattr(v, f) for f in ModelVersion.__slots__}  # type: ignore[attr-defined]
