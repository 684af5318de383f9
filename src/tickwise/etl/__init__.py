"""ETL: bars (from a file, the lake or the warehouse) to a model-ready feature table.

`build_features` is pure computation (`tickwise.etl.features`); `load_etl_bars` reads the
bars it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from tickwise.etl.features import (
    DEFAULT_INDICATORS,
    add_returns,
    build_features,
    detect_gaps,
    fill_gaps,
    trailing_zscore,
)
from tickwise.exceptions import InputError, NotFoundError

if TYPE_CHECKING:
    from tickwise.config import Settings

__all__ = [
    "DEFAULT_INDICATORS",
    "add_returns",
    "build_features",
    "detect_gaps",
    "fill_gaps",
    "load_etl_bars",
    "trailing_zscore",
]


def load_etl_bars(settings: Settings, *, data: Path | None = None, source: str = "lake",
                  symbols: list[str] | None = None, timeframe: str | None = None) -> pl.DataFrame:
    """Read bars for the ETL: from ``data`` (a file) or else from the lake or the warehouse."""
    if data is not None:
        from tickwise.sources.files import read_bars

        bars = read_bars(data, symbol=symbols[0] if symbols and len(symbols) == 1 else None,
                         timeframe=timeframe, tz=settings.input_tz)
    elif source == "lake":
        from tickwise.lake import lake_for

        lake = lake_for(settings)
        table = lake.read("bars", symbols=symbols)
        if table.num_rows == 0:
            raise NotFoundError(f"the lake at {lake.url} has no bars"
                                + (f" for {symbols}" if symbols else ""))
        bars = pl.from_arrow(table)  # type: ignore[assignment]
    elif source == "warehouse":
        from tickwise.app import build_warehouse

        warehouse = build_warehouse(settings, read_only=True)
        try:
            where: dict[str, object] = {"timeframe": timeframe} if timeframe else {}
            names = symbols or warehouse.symbols()
            parts = [pl.from_arrow(warehouse.read("bars", where={**where, "symbol": s})) for s in names]
        finally:
            warehouse.close()
        bars = pl.concat([p for p in parts if p.height], how="vertical_relaxed") if parts else pl.DataFrame()  # type: ignore[misc]
        if bars.height == 0:
            raise NotFoundError(f"the warehouse has no bars for {names}")
    else:
        raise InputError(f"source must be 'lake' or 'warehouse', was {source!r}")
    if symbols:
        bars = bars.filter(pl.col("symbol").is_in(symbols))
    if timeframe:
        bars = bars.filter(pl.col("timeframe") == timeframe)
    if bars.height == 0:
        raise NotFoundError(f"no bars left for symbols={symbols} timeframe={timeframe}")
    return bars.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
