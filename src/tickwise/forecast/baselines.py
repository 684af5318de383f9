"""Baselines every model must beat: naive (random walk), drift, seasonal naive, ETS.

Naive, drift and seasonal naive keep running sums, so ``update`` is O(1); their standard
errors are the textbook ones (Hyndman & Athanasopoulos, *Forecasting: Principles and
Practice*, 5.5) from the one-step residuals seen so far.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from tickwise.exceptions import DataError, InputError
from tickwise.forecast.base import FloatArray
from tickwise.forecast.univariate import UnivariateForecaster


class Naive(UnivariateForecaster):
    """Random walk: every future close equals the last close.

    Examples
    --------
    >>> f = Naive().forecast(np.array([10.0, 11.0, 10.0, 11.0]), 2, level=(95,))
    >>> f.mean.tolist(), f.se.round(3).tolist()
    ([11.0, 11.0], [1.0, 1.414])
    """

    name = "naive"

    def _fit(self, close: FloatArray) -> None:
        d = np.diff(close)
        self.ss_ = float(np.dot(d, d))
        self.count_ = int(d.shape[0])

    def _update(self, value: float) -> None:
        assert self.last_ is not None
        self.ss_ += (value - self.last_) ** 2
        self.count_ += 1

    def _predict(self, h: int) -> tuple[FloatArray, FloatArray]:
        assert self.last_ is not None
        sigma = math.sqrt(self.ss_ / self.count_)
        k = np.arange(1, h + 1, dtype=np.float64)
        return np.full(h, self.last_), sigma * np.sqrt(k)


class Drift(UnivariateForecaster):
    """Random walk with drift: the line through the first and the last close, extended.

    Examples
    --------
    >>> Drift().forecast(np.array([1.0, 2.0, 3.5, 4.0]), 2).mean.tolist()
    [5.0, 6.0]
    """

    name = "drift"

    def _fit(self, close: FloatArray) -> None:
        d = np.diff(close)
        self.first_ = float(close[0])
        self.sum_ = float(d.sum())
        self.ss_ = float(np.dot(d, d))
        self.count_ = int(d.shape[0])

    def _update(self, value: float) -> None:
        assert self.last_ is not None
        step = value - self.last_
        self.sum_ += step
        self.ss_ += step * step
        self.count_ += 1

    def _predict(self, h: int) -> tuple[FloatArray, FloatArray]:
        assert self.last_ is not None
        slope = self.sum_ / self.count_
        # residuals of the diffs around their mean; count - 1 degrees of freedom
        var = max(self.ss_ - self.count_ * slope * slope, 0.0) / max(self.count_ - 1, 1)
        k = np.arange(1, h + 1, dtype=np.float64)
        mean = self.last_ + slope * k
        se = np.sqrt(var * k * (1.0 + k / self.count_))
        return mean, se


class SeasonalNaive(UnivariateForecaster):
    """Each future close equals the close one season earlier.

    Examples
    --------
    >>> SeasonalNaive(season_length=2).forecast(np.array([1.0, 5.0, 2.0, 6.0]), 3).mean.tolist()
    [2.0, 6.0, 2.0]
    """

    name = "seasonal_naive"

    def __init__(self, *, season_length: int = 7) -> None:
        super().__init__()
        if season_length < 1:
            raise InputError(f"season_length must be >= 1, was {season_length}")
        self.season_length = season_length
        self.min_length = season_length + 2

    def _fit(self, close: FloatArray) -> None:
        m = self.season_length
        d = close[m:] - close[:-m]
        self.season_ = deque(close[-m:].tolist(), maxlen=m)
        self.ss_ = float(np.dot(d, d))
        self.count_ = int(d.shape[0])

    def _update(self, value: float) -> None:
        step = value - self.season_[0]
        self.ss_ += step * step
        self.count_ += 1
        self.season_.append(value)

    def _predict(self, h: int) -> tuple[FloatArray, FloatArray]:
        m = self.season_length
        season = np.asarray(self.season_)
        k = np.arange(h)
        sigma = math.sqrt(self.ss_ / self.count_)
        return season[k % m], sigma * np.sqrt(k // m + 1.0)


class ETS(UnivariateForecaster):
    """Exponential smoothing with the form chosen by AICc (statsforecast ``AutoETS``).

    ``update`` appends the close; the next ``predict`` runs the fitted model forward over
    the whole history with its parameters fixed (no re-estimation).

    Examples
    --------
    >>> y = 100 + np.cumsum(np.random.default_rng(0).normal(size=60))
    >>> ETS().forecast(y, 3).mean.shape
    (3,)
    """

    name = "ets"
    min_length = 10

    def __init__(self, *, season_length: int = 1, model: str = "ZZN") -> None:
        super().__init__()
        self.season_length = season_length
        self.model = model

    def _fit(self, close: FloatArray) -> None:
        from statsforecast.models import AutoETS

        self.history_ = list(close.tolist())
        try:
            self.model_ = AutoETS(season_length=self.season_length, model=self.model).fit(close)
        except Exception as exc:  # statsforecast raises bare Exceptions on unusable series
            raise DataError(f"ets could not be fitted to this series: {exc}") from None
        self.stale_ = False

    def _update(self, value: float) -> None:
        self.history_.append(value)
        self.stale_ = True

    def _predict(self, h: int) -> tuple[FloatArray, FloatArray]:
        level = [95]
        if self.stale_:
            out = self.model_.forward(y=np.asarray(self.history_), h=h, level=level)
        else:
            out = self.model_.predict(h=h, level=level)
        mean = np.asarray(out["mean"], dtype=np.float64)
        from tickwise.forecast.base import z_value

        se = (np.asarray(out["hi-95"], dtype=np.float64) - mean) / z_value(95)
        return mean, se
