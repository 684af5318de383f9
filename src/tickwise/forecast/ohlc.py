"""Open, high and low for forecasts of models that only forecast the close.

A univariate model forecasts the close path ``c_1 .. c_h``. The rest of each bar is
derived, and is coherent by construction:

- open: the previous close (``open_1`` is the last observed close, ``open_k = c_{k-1}``),
  which is what a continuous market does between bars;
- high: ``max(open, close) * (1 + u)`` and low: ``min(open, close) * (1 - d)``, where
  ``u`` and ``d`` are the median upper and lower wicks of the last ``window`` bars as
  fractions of the body's top and bottom (both >= 0), so ``low <= open, close <= high``.
"""

from __future__ import annotations

import numpy as np

from tickwise.forecast.base import FloatArray


def typical_wicks(bars: FloatArray, *, window: int = 50) -> tuple[float, float]:
    """Median upper and lower wick of the last ``window`` bars, as fractions (>= 0).

    Examples
    --------
    >>> bars = np.array([[10.0, 11.0, 9.0, 10.0, 1.0], [10.0, 10.5, 9.5, 10.0, 1.0]])
    >>> [round(v, 3) for v in typical_wicks(bars)]
    [0.075, 0.075]
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, was {window}")
    recent = bars[-window:]
    top = np.maximum(recent[:, 0], recent[:, 3])
    bottom = np.minimum(recent[:, 0], recent[:, 3])
    up = np.median(recent[:, 1] / top - 1.0)
    down = np.median(1.0 - recent[:, 2] / bottom)
    return max(float(up), 0.0), max(float(down), 0.0)


def derive_ohlc(last_close: float, close_path: FloatArray, *, up: float, down: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return (open, high, low) arrays for a forecast close path.

    Examples
    --------
    >>> o, h, l = derive_ohlc(100.0, np.array([101.0, 102.0]), up=0.01, down=0.02)
    >>> o.tolist(), h.round(2).tolist(), l.round(2).tolist()
    ([100.0, 101.0], [102.01, 103.02], [98.0, 98.98])
    """
    if up < 0 or down < 0:
        raise ValueError(f"wicks must be >= 0, were up={up} down={down}")
    opens = np.concatenate(([last_close], close_path[:-1])).astype(np.float64)
    highs = np.maximum(opens, close_path) * (1.0 + up)
    lows = np.minimum(opens, close_path) * (1.0 - down)
    return opens, highs, lows
