"""Forecasting: baselines, ARIMA, an LSTM for next-bar OHLC, walk-forward evaluation,
a model registry, and the live stage.

Compute modules (`base`, `baselines`, `arima`, `lstm`, `ohlc`, `evaluate`, `drift`,
`signal`, `tune`) work on NumPy arrays and import no I/O. `registry` and `stage` talk to
the warehouse and the pipeline.
"""

from __future__ import annotations

from tickwise.forecast.arima import Arima, ArimaState
from tickwise.forecast.base import DEFAULT_LEVELS, Forecast, Forecaster
from tickwise.forecast.baselines import ETS, Drift, Naive, SeasonalNaive
from tickwise.forecast.catalog import MODELS, make_model
from tickwise.forecast.evaluate import WalkForward, walk_forward
from tickwise.forecast.lstm import LSTMForecaster

__all__ = [
    "DEFAULT_LEVELS",
    "ETS",
    "MODELS",
    "Arima",
    "ArimaState",
    "Drift",
    "Forecast",
    "Forecaster",
    "LSTMForecaster",
    "Naive",
    "SeasonalNaive",
    "WalkForward",
    "make_model",
    "walk_forward",
]
