"""Real bars for the indicator tests: the committed AAPL slice and the shared MSFT series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.conftest import FIXTURES, shared_file

Series = dict[str, np.ndarray]


def load_series(path: Path) -> Series:
    from tickwise.sources.files import read_bars

    bars = read_bars(path)
    return {c: bars[c].cast(pl.Float64).to_numpy() for c in ("open", "high", "low", "close", "volume")}


@pytest.fixture(scope="session")
def aapl() -> Series:
    return load_series(FIXTURES / "aapl_daily_wiki.csv")


@pytest.fixture(scope="session")
def msft() -> Series:
    return load_series(shared_file("msft_daily_pmdarima.csv"))
