"""The streaming indicator contract.

A streaming indicator is one small object per indicator and per symbol. It is fed one
closed bar at a time with ``update(...)`` (which returns ``None``), costs O(1) per bar, and
answers with ``value`` (NaN, or a tuple of NaNs, until ``is_ready``). Its inputs are the bar
fields named by ``inputs``, passed positionally in that order::

    sma.update(close)                    # inputs ("close",)
    atr.update(high, low, close)         # inputs ("high", "low", "close")
    obv.update(close, volume)            # inputs ("close", "volume")

Every streaming indicator has a batch twin in `tickwise.indicators.batch` that gives the
same numbers over whole arrays; both follow TA-Lib's conventions (see that module).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

NAN = float("nan")


class Indicator(ABC):
    """One streaming indicator: ``update`` per bar, then read ``value``.

    Subclasses set ``inputs`` (bar fields, in ``update``'s argument order) and ``columns``
    (output names, one per value).
    """

    __slots__ = ()

    #: bar fields passed to ``update``, in order
    inputs: tuple[str, ...] = ("close",)
    #: output column names; a single-output indicator has one
    columns: tuple[str, ...] = ()

    @abstractmethod
    def update(self, *x: float) -> None:
        """Take one closed bar's inputs."""

    @property
    @abstractmethod
    def value(self) -> float | tuple[float, ...]:
        """The value after the last bar: a float, or a tuple for several outputs; NaN until ready."""

    @property
    @abstractmethod
    def is_ready(self) -> bool:
        """True once the warm-up is over and ``value`` is defined."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every bar seen."""

    @property
    def values(self) -> tuple[float, ...]:
        """The value as a tuple, one item per column."""
        v = self.value
        return v if isinstance(v, tuple) else (v,)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self.columns)})"


def check_period(name: str, period: int, *, minimum: int = 1) -> int:
    """Return ``period`` if it is an int >= ``minimum``, else raise a clear ValueError.

    Examples
    --------
    >>> check_period("period", 9)
    9
    """
    if isinstance(period, bool) or not isinstance(period, int | np.integer) or period < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, was {period!r}")
    return int(period)
