"""Indicators over a bars frame: one column per value, computed per symbol and timeframe.

Examples
--------
>>> import polars as pl
>>> bars = pl.DataFrame({"symbol": ["A"] * 3 + ["B"] * 3, "ts": [1, 2, 3] * 2,
...                      "close": [1.0, 2.0, 3.0, 10.0, 20.0, 30.0]})
>>> compute_indicators(bars, "sma_2")["sma_2"].to_list()
[None, 1.5, 2.5, None, 15.0, 25.0]
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

import numpy as np
import polars as pl

from tickwise.exceptions import InputError
from tickwise.indicators.registry import IndicatorSpec, as_specs

_GROUP_KEYS = ("symbol", "timeframe")


def compute_indicators(
    bars: pl.DataFrame, indicators: str | Iterable[str] | Iterable[IndicatorSpec]
) -> pl.DataFrame:
    """Return ``bars`` sorted by (symbol, timeframe, ts) with one column per indicator value.

    Each (symbol, timeframe) series is computed on its own, in ``ts`` order; warm-up values
    are null. A bar column whose name an indicator column takes (the bars' own ``vwap``
    when ``vwap`` is asked for) is kept as ``bar_<name>``.

    Parameters
    ----------
    bars
        A frame with the inputs the indicators need (``close``; ``high``, ``low`` and
        ``volume`` for ATR, OBV, VWAP, volume SMA), and optionally ``symbol``,
        ``timeframe``, ``ts``.
    indicators
        Names such as ``"sma_9,rsi_14,macd"`` or parsed specs.
    """
    specs = as_specs(indicators)
    needed = sorted({field for spec in specs for field in spec.inputs})
    missing = [c for c in needed if c not in bars.columns]
    if missing:
        raise InputError(f"bars must have columns {needed} for these indicators, was missing {missing}")
    keys = [k for k in _GROUP_KEYS if k in bars.columns]
    order = keys + (["ts"] if "ts" in bars.columns else [])
    frame = bars.sort(order, maintain_order=True) if order else bars
    arrays = {c: frame[c].cast(pl.Float64).to_numpy() for c in needed}
    if keys:
        lengths = frame.group_by(keys, maintain_order=True).len()["len"].to_numpy().astype(np.int64)
    else:
        lengths = np.array([frame.height], dtype=np.int64)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    out: dict[str, np.ndarray] = {}
    ranges = [(int(lo), int(hi)) for lo, hi in pairwise(bounds)]
    for spec in specs:
        for column in spec.columns:
            out[column] = np.full(frame.height, np.nan)
        for lo, hi in ranges:
            part = spec.batch({c: a[lo:hi] for c, a in arrays.items()})
            for column, values in part.items():
                out[column][lo:hi] = values
    taken = [c for c in out if c in frame.columns]
    if taken:
        frame = frame.rename({c: f"bar_{c}" for c in taken})
    return frame.with_columns(
        pl.Series(name, values, dtype=pl.Float64).fill_nan(None) for name, values in out.items()
    )
