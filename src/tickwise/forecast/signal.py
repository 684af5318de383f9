"""Buy/sell/hold from a forecast: act only when the predicted move beats its own noise.

BUY when ``predicted_close - last_close > k * se``, SELL when
``last_close - predicted_close > k * se``, else HOLD, where ``se`` is the forecast's
standard error of the next close and ``k`` is configurable.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def forecast_signals(predicted: npt.ArrayLike, last: npt.ArrayLike, se: npt.ArrayLike, *, k: float = 1.0) -> np.ndarray:
    """Return an array of "BUY" / "SELL" / "HOLD", one per forecast.

    Examples
    --------
    >>> forecast_signals([101.0, 99.0, 100.2], [100.0, 100.0, 100.0], [0.5, 0.5, 0.5], k=1.0).tolist()
    ['BUY', 'SELL', 'HOLD']
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, was {k}")
    move = np.asarray(predicted, dtype=np.float64) - np.asarray(last, dtype=np.float64)
    band = k * np.asarray(se, dtype=np.float64)
    return np.where(move > band, "BUY", np.where(-move > band, "SELL", "HOLD"))
