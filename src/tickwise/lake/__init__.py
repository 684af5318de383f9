"""The data lake: Hive-partitioned Parquet on ``file://`` or ``s3://``, queried with SQL.

Raw zone: ``ticks``. Processed zone: ``bars``, ``signals``, ``features``. Every dataset is
partitioned ``date=YYYY-MM-DD/symbol=XYZ``. See `tickwise.lake.writer` for how commits stay
atomic and `tickwise.lake.query` for read-only SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tickwise.lake.datasets import DATASETS, DatasetSpec, dataset_spec
from tickwise.lake.lake import Lake, TableInfo, open_lake
from tickwise.lake.writer import LakeWriter

if TYPE_CHECKING:
    from tickwise.config import Settings

__all__ = ["DATASETS", "DatasetSpec", "Lake", "LakeWriter", "TableInfo", "dataset_spec", "lake_for", "open_lake"]


def lake_for(settings: Settings) -> Lake:
    """Open the lake named by the settings (``lake``, ``lake_endpoint`` and credentials)."""
    return open_lake(
        settings.lake_url,
        endpoint=settings.lake_endpoint,
        access_key=settings.lake_access_key,
        secret_key=settings.lake_secret_key,
        region=settings.lake_region,
    )
