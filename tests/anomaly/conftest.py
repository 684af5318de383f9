from __future__ import annotations

import polars as pl
import pytest
import torch

from tests.conftest import shared_file

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def goog_bars() -> pl.DataFrame:
    """Real daily GOOG bars (2,148 rows), oldest first."""
    from tickwise.sources.files import read_bars

    return read_bars(shared_file("goog_daily_backtesting.csv")).sort("ts")
