"""The shared part of models that forecast the close only (naive, drift, ETS, ARIMA).

A subclass implements ``_fit(close)``, ``_update(value)`` and ``_predict(h) -> (mean, se)``;
this base checks the input, keeps the last bars for the derived open/high/low (see
`tickwise.forecast.ohlc`), and turns ``(mean, se)`` into a `Forecast` with normal intervals.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Self

import numpy as np
import numpy.typing as npt

from tickwise.exceptions import InputError
from tickwise.forecast.base import (
    DEFAULT_LEVELS,
    FloatArray,
    Forecast,
    as_series,
    check_horizon,
    check_levels,
    closes,
    gaussian_intervals,
)
from tickwise.forecast.ohlc import derive_ohlc, typical_wicks

WICK_WINDOW = 50


class UnivariateForecaster:
    """Base of close-only models; see the module docstring."""

    name = "univariate"
    min_length = 3

    def __init__(self) -> None:
        self.recent_: deque[FloatArray] = deque(maxlen=WICK_WINDOW)
        self.last_: float | None = None
        self.n_: int = 0

    @property
    def is_fitted(self) -> bool:
        return self.last_ is not None

    def fit(self, y: npt.ArrayLike) -> Self:
        arr = as_series(y, min_length=self.min_length, name=self.name)
        close = closes(arr)
        self.recent_ = deque((row for row in arr[-WICK_WINDOW:]) if arr.ndim == 2 else (), maxlen=WICK_WINDOW)
        self._fit(close)
        self.last_ = float(close[-1])
        self.n_ = int(close.shape[0])
        return self

    def update(self, bar: npt.ArrayLike) -> None:
        """Take one new bar (a row of open, high, low, close, volume) or one close."""
        if self.last_ is None:
            raise InputError(f"{self.name} must be fitted before update, was not")
        row = np.asarray(bar, dtype=np.float64)
        value = float(row[3]) if row.ndim == 1 and row.shape[0] == 5 else float(row)
        if not np.isfinite(value) or value <= 0:
            raise InputError(f"{self.name} update needs a finite price > 0, was {value}")
        if row.ndim == 1 and row.shape[0] == 5:
            self.recent_.append(row)
        self._update(value)
        self.last_ = value
        self.n_ += 1

    def predict(self, h: int, *, level: Sequence[int] = DEFAULT_LEVELS) -> Forecast:
        if self.last_ is None:
            raise InputError(f"{self.name} must be fitted before predict, was not")
        check_horizon(h)
        levels = check_levels(level)
        mean, se = self._predict(int(h))
        mean = np.asarray(mean, dtype=np.float64)
        se = np.asarray(se, dtype=np.float64)
        lo, hi = gaussian_intervals(mean, se, levels)
        if self.recent_:
            up, down = typical_wicks(np.asarray(self.recent_))
            op, high, low = derive_ohlc(self.last_, mean, up=up, down=down)
            return Forecast(mean=mean, se=se, lo=lo, hi=hi, open=op, high=high, low=low)
        return Forecast(mean=mean, se=se, lo=lo, hi=hi)

    def forecast(self, y: npt.ArrayLike, h: int, *, level: Sequence[int] = DEFAULT_LEVELS) -> Forecast:
        return self.fit(y).predict(h, level=level)

    # subclasses
    def _fit(self, close: FloatArray) -> None:
        raise NotImplementedError

    def _update(self, value: float) -> None:
        raise NotImplementedError

    def _predict(self, h: int) -> tuple[FloatArray, FloatArray]:
        raise NotImplementedError
