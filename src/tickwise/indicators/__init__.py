"""Technical indicators in two forms that agree: streaming (per bar) and batch (per array).

- `tickwise.indicators.streaming`: one small class per indicator (``update``/``value``/``is_ready``).
- `tickwise.indicators.batch`: NumPy functions over whole arrays.
- `tickwise.indicators.registry`: names such as ``sma_9`` or ``macd`` parsed into specs.
- `IndicatorSet`: several streaming indicators of one series; `compute_indicators`: the batch
  form over a bars frame, per symbol and timeframe.

Both forms follow TA-Lib's conventions and match it to 1e-9 relative (tests/indicators).
"""

from __future__ import annotations

from tickwise.indicators.base import Indicator
from tickwise.indicators.frame import compute_indicators
from tickwise.indicators.indicator_set import IndicatorSet
from tickwise.indicators.registry import (
    FAMILIES,
    IndicatorSpec,
    parse_indicator,
    parse_indicators,
    valid_names,
)
from tickwise.indicators.streaming import ATR, EMA, MACD, OBV, RSI, SMA, VWAP, WMA, BollingerBands

__all__ = [
    "ATR", "EMA", "FAMILIES", "MACD", "OBV", "RSI", "SMA", "VWAP", "WMA", "BollingerBands",
    "Indicator", "IndicatorSet", "IndicatorSpec", "compute_indicators", "parse_indicator",
    "parse_indicators", "valid_names",
]
