"""The composition module: builds concrete backends and stages from `Settings`.

This is the one place that knows every implementation; everything else takes its
collaborators through constructors.
"""

from __future__ import annotations

import importlib
import inspect

from tickwise.bus import Bus, open_bus
from tickwise.config import Settings
from tickwise.pipeline.stages import BarStage
from tickwise.store import Warehouse, open_warehouse

#: Analytics stages run on closed bars by `tickwise up`: ``"module:factory"``, where
#: ``factory(settings) -> BarStage`` or ``factory(settings, *, warehouse) -> BarStage``.
STAGES: list[str] = [
    "tickwise.forecast.stage:make_stage",
    "tickwise.signals.stage:make_stage",
    "tickwise.anomaly.stage:make_stage",
]


def build_bus(settings: Settings) -> Bus:
    return open_bus(settings.bus, partitions=settings.bus_partitions, capacity=settings.bus_capacity)


def build_warehouse(settings: Settings, *, read_only: bool = False) -> Warehouse:
    if settings.warehouse_url.startswith("duckdb://"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_warehouse(settings.warehouse_url, read_only=read_only)


def build_lake(settings: Settings):  # -> tickwise.lake.Lake
    from tickwise.lake import lake_for

    return lake_for(settings)


def build_stages(settings: Settings, warehouse: Warehouse | None = None) -> list[BarStage]:
    """Build every stage; a factory that takes ``warehouse`` gets the running one."""
    stages = []
    for spec in STAGES:
        module_name, _, name = spec.partition(":")
        factory = getattr(importlib.import_module(module_name), name)
        if warehouse is not None and "warehouse" in inspect.signature(factory).parameters:
            stages.append(factory(settings, warehouse=warehouse))
        else:
            stages.append(factory(settings))
    return stages
