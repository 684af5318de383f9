"""ARIMA through statsforecast, with an O(1) Kalman-filter update between refits.

`Arima` fits statsforecast's ``AutoARIMA`` (orders chosen by AICc) or, with ``order=``,
its ``ARIMA`` with fixed orders (estimation ``CSS-ML``, the same likelihood as
statsmodels' ``ARIMA``; see tests/forecast/test_arima.py for the 1e-4 parity).

After a fit, the model's state-space form (``Z``, ``T``, ``V``, filtered state ``a`` and
covariance ``P``) is kept as `ArimaState`. ``update(bar)`` runs one step of the same
Kalman filter that statsforecast runs over the whole series (R's ``ARIMA_Like``), with the
coefficients fixed: the result equals statsforecast's ``forward`` on the extended series,
at the cost of a few 3x3 matrix products instead of a pass over the history.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from tickwise.exceptions import DataError, InputError
from tickwise.forecast.base import FloatArray
from tickwise.forecast.univariate import UnivariateForecaster


@dataclass(slots=True, kw_only=True)
class ArimaState:
    """A fitted ARIMA in state-space form, filtered up to observation ``t``.

    ``beta`` holds the regression terms removed before filtering: ``intercept`` (times 1)
    and ``drift`` (times the 1-based observation index).

    Examples
    --------
    >>> s = ArimaState(Z=np.array([1.0, 1.0]), T=np.array([[0.0, 0.0], [1.0, 1.0]]),
    ...                V=np.array([[1.0, 0.0], [0.0, 0.0]]), a=np.array([0.0, 10.0]),
    ...                P=np.zeros((2, 2)), h=0.0, sigma2=1.0, intercept=0.0, drift=0.0, t=5)
    >>> s.update(11.0)
    1.0
    >>> s.predict(1)[0].tolist()
    [11.0]
    """

    Z: FloatArray
    T: FloatArray
    V: FloatArray
    a: FloatArray
    P: FloatArray
    h: float
    sigma2: float
    intercept: float
    drift: float
    t: int

    def _regression(self, t: FloatArray | int) -> FloatArray | float:
        return self.intercept + self.drift * t

    def update(self, y: float) -> float:
        """Filter one new observation; return its one-step prediction error."""
        self.t += 1
        x = y - self._regression(self.t)
        a_new = self.T @ self.a
        p_new = self.T @ self.P @ self.T.T + self.V
        resid = float(x - self.Z @ a_new)
        gain = float(self.Z @ p_new @ self.Z) + self.h
        m = p_new @ self.Z
        self.a = a_new + m * (resid / gain)
        self.P = p_new - np.outer(m, m) / gain
        return resid

    def predict(self, h: int) -> tuple[FloatArray, FloatArray]:
        """Return the mean and standard error of the next ``h`` observations."""
        a, p = self.a, self.P
        mean = np.empty(h)
        var = np.empty(h)
        for k in range(h):
            a = self.T @ a
            p = self.T @ p @ self.T.T + self.V
            mean[k] = self.Z @ a
            var[k] = self.h + self.Z @ p @ self.Z
        steps = np.arange(self.t + 1, self.t + h + 1, dtype=np.float64)
        return mean + self._regression(steps), np.sqrt(var * self.sigma2)

    def to_json(self) -> dict[str, Any]:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in
                ((f, getattr(self, f)) for f in self.__slots__)}  # type: ignore[attr-defined]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArimaState:
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in ("Z", "T", "V", "a", "P")}
        return cls(**arrays, h=float(data["h"]), sigma2=float(data["sigma2"]),
                   intercept=float(data["intercept"]), drift=float(data["drift"]), t=int(data["t"]))


def state_from_statsforecast(model: dict[str, Any]) -> ArimaState:
    """Take the state-space form out of a fitted statsforecast ARIMA ``model_`` dict."""
    coef = model["coef"]
    unknown = [k for k in coef if not (k[:2] in ("ar", "ma") or k[:3] in ("sar", "sma") or k in ("intercept", "drift"))]
    if unknown:
        raise InputError(f"arima state supports intercept and drift regressors only, found {unknown}")
    ss = model["model"]
    return ArimaState(
        Z=np.array(ss["Z"], dtype=np.float64), T=np.array(ss["T"], dtype=np.float64),
        V=np.array(ss["V"], dtype=np.float64), a=np.array(ss["a"], dtype=np.float64),
        P=np.array(ss["P"], dtype=np.float64), h=float(ss["h"]), sigma2=float(model["sigma2"]),
        intercept=float(coef.get("intercept", 0.0)), drift=float(coef.get("drift", 0.0)),
        t=len(model["x"]),
    )


class Arima(UnivariateForecaster):
    """ARIMA on closes: orders by AICc (``order=None``) or fixed ``order=(p, d, q)``.

    Parameters
    ----------
    order
        ``(p, d, q)`` to fit with fixed orders, or None for AutoARIMA's stepwise search.
    include_mean, include_drift
        Regression terms for a fixed-order model (statsforecast's meaning).
    season_length
        Seasonal period for AutoARIMA (1: non-seasonal).
    max_p, max_q
        Search limits for AutoARIMA.

    Examples
    --------
    >>> y = 100 + np.cumsum(np.random.default_rng(1).normal(size=120))
    >>> f = Arima(order=(0, 1, 1)).forecast(y, 2)
    >>> f.mean.shape, bool(np.all(f.lo[95] < f.mean))
    ((2,), True)
    """

    name = "arima"
    min_length = 20

    def __init__(self, *, order: tuple[int, int, int] | None = None, include_mean: bool = True,
                 include_drift: bool = False, season_length: int = 1, max_p: int = 5,
                 max_q: int = 5) -> None:
        super().__init__()
        if order is not None and (len(order) != 3 or min(order) < 0):
            raise InputError(f"order must be three integers (p, d, q) >= 0, was {order!r}")
        self.order = tuple(int(v) for v in order) if order is not None else None
        self.include_mean = include_mean
        self.include_drift = include_drift
        self.season_length = season_length
        self.max_p = max_p
        self.max_q = max_q

    @property
    def params(self) -> dict[str, Any]:
        return {"order": list(self.order) if self.order else None, "include_mean": self.include_mean,
                "include_drift": self.include_drift, "season_length": self.season_length,
                "max_p": self.max_p, "max_q": self.max_q}

    def _fit(self, close: FloatArray) -> None:
        from statsforecast.models import ARIMA, AutoARIMA

        if self.order is not None:
            model = ARIMA(order=self.order, include_mean=self.include_mean,
                          include_drift=self.include_drift, method="CSS-ML")
        else:
            model = AutoARIMA(season_length=self.season_length, seasonal=self.season_length > 1,
                              max_p=self.max_p, max_q=self.max_q)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitted = model.fit(close).model_
        except Exception as exc:  # statsforecast fails with bare ValueErrors on unusable series
            what = f"arima{self.order}" if self.order else "auto arima"
            raise DataError(
                f"{what} could not be fitted to this series ({type(exc).__name__}: {exc}); "
                "a stationary order (d=0) on a trending series is the usual cause"
            ) from None
        arma = fitted["arma"]
        self.order_ = (int(arma[0]), int(arma[5]), int(arma[1]))
        self.coef_ = {k: float(v) for k, v in fitted["coef"].items()}
        self.sigma2_ = float(fitted["sigma2"])
        self.residuals_ = np.asarray(fitted["residuals"], dtype=np.float64)
        self.state_ = state_from_statsforecast(fitted)

    def _update(self, value: float) -> None:
        self.state_.update(value)

    def _predict(self, h: int) -> tuple[FloatArray, FloatArray]:
        return self.state_.predict(h)

    def dumps(self) -> bytes:
        """Serialize the fitted state as JSON bytes (no pickle: safe to load from a shared store)."""
        return json.dumps({"params": self.params, "order_": self.order_, "coef_": self.coef_,
                           "state": self.state_.to_json(), "last": self.last_, "n": self.n_,
                           "recent": [r.tolist() for r in self.recent_]}).encode()

    @classmethod
    def loads(cls, data: bytes) -> Arima:
        """Rebuild a fitted model written by `dumps`."""
        raw = json.loads(data)
        params = raw["params"]
        model = cls(order=tuple(params["order"]) if params["order"] else None,
                    include_mean=params["include_mean"], include_drift=params["include_drift"],
                    season_length=params["season_length"], max_p=params["max_p"], max_q=params["max_q"])
        model.order_ = tuple(raw["order_"])  # type: ignore[assignment]
        model.coef_ = raw["coef_"]
        model.state_ = ArimaState.from_json(raw["state"])
        model.sigma2_ = model.state_.sigma2
        model.residuals_ = np.empty(0)
        model.last_ = raw["last"]
        model.n_ = raw["n"]
        model.recent_.extend(np.asarray(r) for r in raw["recent"])
        return model
