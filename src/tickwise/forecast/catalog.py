"""Model names as used on the command line, in tables and in the registry."""

from __future__ import annotations

from typing import Any

from tickwise.exceptions import InputError
from tickwise.forecast.arima import Arima
from tickwise.forecast.base import Forecaster
from tickwise.forecast.baselines import ETS, Drift, Naive, SeasonalNaive
from tickwise.forecast.lstm import LSTMForecaster

MODELS: dict[str, type] = {
    "naive": Naive,
    "drift": Drift,
    "seasonal_naive": SeasonalNaive,
    "ets": ETS,
    "arima": Arima,
    "lstm": LSTMForecaster,
}


def make_model(name: str, **params: Any) -> Forecaster:
    """Build a model by name with keyword parameters.

    Examples
    --------
    >>> make_model("naive").name
    'naive'
    """
    cls = MODELS.get(name)
    if cls is None:
        raise InputError(f"model must be one of {', '.join(MODELS)}, was {name!r}")
    if name == "arima" and params.get("order") is not None:
        params = {**params, "order": tuple(params["order"])}
    try:
        return cls(**params)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise InputError(f"bad parameters for model {name}: {exc}") from None


def parse_models(text: str) -> list[str]:
    """Split a comma-separated list of model names and check each.

    Examples
    --------
    >>> parse_models("arima, naive")
    ['arima', 'naive']
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError("at least one model is needed, was empty")
    for n in names:
        if n not in MODELS:
            raise InputError(f"model must be one of {', '.join(MODELS)}, was {n!r}")
    return names
