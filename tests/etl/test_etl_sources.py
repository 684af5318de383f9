"""Where the ETL reads bars: a file, the lake, the warehouse."""

from __future__ import annotations

import polars as pl
import pytest

from tests.conftest import shared_file
from tickwise.etl import load_etl_bars
from tickwise.exceptions import InputError, NotFoundError


@pytest.fixture
def bars() -> pl.DataFrame:
    from tickwise.sources.files import read_bars

    daily = read_bars(shared_file("stocks_daily_quandl_wiki_bokeh.csv"))
    return daily.filter(pl.col("ts").dt.year() == 2005)


def test_load_etl_bars_from_lake_and_warehouse_equal_the_source(settings, bars: pl.DataFrame) -> None:
    from tickwise.app import build_warehouse
    from tickwise.lake import lake_for

    lake_for(settings).write("bars", bars.filter(pl.col("symbol").is_in(["IBM", "MSFT"])).to_arrow())
    warehouse = build_warehouse(settings)
    warehouse.upsert("bars", bars.to_arrow())
    warehouse.close()
    expected = bars.filter(pl.col("symbol") == "MSFT").sort("ts")
    for source in ("lake", "warehouse"):
        got = load_etl_bars(settings, source=source, symbols=["MSFT"], timeframe="1d")
        got = got.select(expected.columns).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
        assert got.sort("ts").equals(expected.with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))), source


def test_load_etl_bars_empty_lake_and_bad_source_clear_errors(settings) -> None:
    with pytest.raises(NotFoundError, match="has no bars"):
        load_etl_bars(settings, source="lake")
    with pytest.raises(InputError, match="source must be 'lake' or 'warehouse', was 'ftp'"):
        load_etl_bars(settings, source="ftp")
