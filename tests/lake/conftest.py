"""Fixtures for the lake tests: an empty local lake and real daily bars."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.conftest import shared_file
from tickwise.lake import Lake, open_lake


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return open_lake(f"file://{tmp_path / 'lake'}")


@pytest.fixture
def daily_bars() -> pl.DataFrame:
    """Real daily bars of AAPL, IBM, MSFT, GOOG and FB (public-domain Quandl WIKI)."""
    from tickwise.sources.files import read_bars

    return read_bars(shared_file("stocks_daily_quandl_wiki_bokeh.csv"))


@pytest.fixture
def aapl_bars(daily_bars: pl.DataFrame) -> pl.DataFrame:
    return daily_bars.filter(pl.col("symbol") == "AAPL")
