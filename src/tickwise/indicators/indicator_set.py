"""Several streaming indicators of one series, updated together on each closed bar.

Examples
--------
>>> s = IndicatorSet("sma_2,obv")
>>> s.update(2.0, 1.0, 1.5, 100.0)
>>> s.update(3.0, 2.0, 2.5, 50.0)
>>> s.values()
{'sma_2': 2.0, 'obv': 150.0}
"""

from __future__ import annotations

from collections.abc import Iterable

from tickwise.indicators.base import Indicator
from tickwise.indicators.registry import IndicatorSpec, as_specs

_SIGNATURES = {
    ("close",): 0,
    ("volume",): 1,
    ("high", "low", "close"): 2,
    ("close", "volume"): 3,
    ("high", "low", "close", "volume"): 4,
}


class IndicatorSet:
    """Streaming indicators for one symbol and timeframe, fed one bar at a time.

    Parameters
    ----------
    indicators
        Names (``"sma_9,rsi_14"`` or a list) or parsed specs.

    Examples
    --------
    >>> s = IndicatorSet(["rsi_2"])
    >>> for close in [1.0, 2.0, 1.0, 2.0]:
    ...     s.update(close, close, close, 1.0)
    >>> s.values()["rsi_2"], s.is_ready
    (75.0, True)
    """

    __slots__ = ("_by_input", "_readers", "columns", "indicators", "specs")

    def __init__(self, indicators: str | Iterable[str] | Iterable[IndicatorSpec]) -> None:
        self.specs: list[IndicatorSpec] = as_specs(indicators)
        self.indicators: list[Indicator] = [spec.streaming() for spec in self.specs]
        groups: list[list] = [[], [], [], [], []]
        for ind in self.indicators:
            groups[_SIGNATURES[ind.inputs]].append(ind.update)
        self._by_input = tuple(tuple(g) for g in groups)
        self.columns: tuple[str, ...] = tuple(c for ind in self.indicators for c in ind.columns)
        # reading every value is on the per-bar hot path: sort out one-column indicators once
        self._readers = tuple(
            (ind.columns[0] if len(ind.columns) == 1 else None, ind.columns, ind)
            for ind in self.indicators
        )

    def update(self, high: float, low: float, close: float, volume: float) -> None:
        """Take one closed bar."""
        on_close, on_volume, on_hlc, on_cv, on_hlcv = self._by_input
        for u in on_close:
            u(close)
        for u in on_volume:
            u(volume)
        for u in on_hlc:
            u(high, low, close)
        for u in on_cv:
            u(close, volume)
        for u in on_hlcv:
            u(high, low, close, volume)

    @property
    def is_ready(self) -> bool:
        """True once every indicator is past its warm-up."""
        return all(ind.is_ready for ind in self.indicators)

    def values(self) -> dict[str, float]:
        """Every output column and its current value (NaN while warming up)."""
        out: dict[str, float] = {}
        for column, columns, ind in self._readers:
            if column is not None:
                out[column] = ind.value
            else:
                out.update(zip(columns, ind.value, strict=True))
        return out

    def reset(self) -> None:
        """Forget every bar seen."""
        for ind in self.indicators:
            ind.reset()
