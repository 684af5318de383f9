"""The forecaster contract: one result type, one interface, one input check.

Every model takes a series ``y``: either a 1-D array of closes, or a 2-D array of bars
with the columns of `BAR_FIELDS` (open, high, low, close, volume), oldest first.
Univariate models forecast the close; the LSTM needs bars. Models follow the
statsforecast verbs (``fit(y) -> self``, ``predict(h, level=...)``, ``forecast(y, h)``)
and the river verb ``update(bar)`` for the cheap step between refits.

Results are `Forecast` objects: arrays for the point forecast and one (lo, hi) pair
per interval level, keyed by the integer level (never by strings such as ``"lo-80"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, Self

import numpy as np
import numpy.typing as npt

from tickwise.exceptions import DataError, InputError

FloatArray = npt.NDArray[np.float64]

#: Columns of a 2-D bar array, in order.
BAR_FIELDS = ("open", "high", "low", "close", "volume")
CLOSE = 3

DEFAULT_LEVELS: tuple[int, ...] = (80, 95)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Forecast:
    """Point forecasts of the next ``h`` bars with prediction intervals of the close.

    ``open``, ``high`` and ``low`` are set when the model was fitted on bars; they always
    satisfy ``low <= min(open, close)`` and ``max(open, close) <= high``.

    Examples
    --------
    >>> f = Forecast(mean=np.array([10.0]), se=np.array([1.0]),
    ...              lo={80: np.array([8.7])}, hi={80: np.array([11.3])})
    >>> f.interval(80)
    (array([8.7]), array([11.3]))
    """

    mean: FloatArray
    se: FloatArray
    lo: dict[int, FloatArray] = field(default_factory=dict)
    hi: dict[int, FloatArray] = field(default_factory=dict)
    open: FloatArray | None = None
    high: FloatArray | None = None
    low: FloatArray | None = None

    def __post_init__(self) -> None:
        if set(self.lo) != set(self.hi):
            raise ValueError(f"lo and hi must have the same levels, were {sorted(self.lo)} and {sorted(self.hi)}")
        if self.open is not None and self.high is not None and self.low is not None:
            top = np.maximum(self.open, self.mean)
            bottom = np.minimum(self.open, self.mean)
            if np.any(self.high < top - 1e-12) or np.any(self.low > bottom + 1e-12):
                raise ValueError("forecast OHLC must have low <= open, close <= high, was not")

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(sorted(self.lo))

    @property
    def horizon(self) -> int:
        return int(self.mean.shape[0])

    def interval(self, level: int) -> tuple[FloatArray, FloatArray]:
        """Return the (lo, hi) arrays of one level."""
        if level not in self.lo:
            raise InputError(f"level must be one of {self.levels}, was {level}")
        return self.lo[level], self.hi[level]


class Forecaster(Protocol):
    """What every model offers."""

    #: short name used on the command line, in tables and as the signal rule suffix
    name: str

    def fit(self, y: npt.ArrayLike) -> Self:
        """Fit on a series (closes or bars), oldest first."""
        ...

    def predict(self, h: int, *, level: Sequence[int] = DEFAULT_LEVELS) -> Forecast:
        """Forecast ``h`` bars past the end of the data seen so far."""
        ...

    def update(self, bar: npt.ArrayLike) -> None:
        """Take one new observation (a close or a bar row) without a full refit."""
        ...

    def forecast(self, y: npt.ArrayLike, h: int, *, level: Sequence[int] = DEFAULT_LEVELS) -> Forecast:
        """Fit on ``y`` and forecast ``h`` bars."""
        ...


def as_series(y: npt.ArrayLike, *, min_length: int, name: str, needs_bars: bool = False) -> FloatArray:
    """Check a series and return it as float64 (1-D closes or 2-D bars).

    Raises `DataError` with a message saying what was expected and what was found:
    too short, not finite (NaN or inf), constant, non-positive prices, or a bad shape.

    Examples
    --------
    >>> as_series([1.0, 2.0, 3.0], min_length=3, name="naive")
    array([1., 2., 3.])
    >>> as_series([1.0, float("nan"), 3.0], min_length=3, name="naive")
    Traceback (most recent call last):
    ...
    tickwise.exceptions.DataError: naive needs finite values, found 1 NaN/inf (first at position 1)
    """
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim == 2:
        if arr.shape[1] != len(BAR_FIELDS):
            raise DataError(f"{name} needs bars with columns {', '.join(BAR_FIELDS)}, was {arr.shape[1]} columns")
        prices = arr[:, :4]
    elif arr.ndim == 1:
        if needs_bars:
            raise DataError(f"{name} needs OHLCV bars (a 2-D array), was a 1-D series of closes")
        prices = arr
    else:
        raise DataError(f"{name} needs a 1-D series or 2-D bars, was {arr.ndim}-D")
    n = arr.shape[0]
    if n < min_length:
        raise DataError(f"{name} needs at least {min_length} bars, was {n}")
    bad = ~np.isfinite(arr) if arr.ndim == 1 else ~np.isfinite(arr).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"{name} needs finite values, found {int(bad.sum())} NaN/inf (first at position {first})")
    if np.any(prices <= 0):
        first = int(np.flatnonzero((prices <= 0).reshape(n, -1).any(axis=1))[0])
        raise DataError(f"{name} needs prices > 0, found a price <= 0 at position {first}")
    close = arr[:, CLOSE] if arr.ndim == 2 else arr
    if np.ptp(close) == 0.0:
        raise DataError(f"{name} cannot learn from a constant series, every close was {close[0]:g}")
    return arr


def closes(y: FloatArray) -> FloatArray:
    """Return the close column of bars, or the series itself when it is 1-D."""
    return y[:, CLOSE] if y.ndim == 2 else y


def check_horizon(h: int) -> None:
    if not isinstance(h, int | np.integer) or h < 1:
        raise InputError(f"horizon must be an integer >= 1, was {h!r}")


def check_levels(level: Sequence[int]) -> tuple[int, ...]:
    levels = tuple(int(v) for v in level)
    for v in levels:
        if not 0 < v < 100:
            raise InputError(f"interval level must be between 0 and 100 (exclusive), was {v}")
    return levels


def z_value(level: int) -> float:
    """Two-sided normal quantile of a level in percent.

    Examples
    --------
    >>> round(z_value(95), 4)
    1.96
    """
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 200.0)


def gaussian_intervals(mean: FloatArray, se: FloatArray, levels: Sequence[int]) -> tuple[dict[int, FloatArray], dict[int, FloatArray]]:
    """Symmetric normal intervals ``mean ± z * se`` per level."""
    lo = {lv: mean - z_value(lv) * se for lv in levels}
    hi = {lv: mean + z_value(lv) * se for lv in levels}
    return lo, hi
