"""Rolling-origin walk-forward evaluation of one-step-ahead forecasts.

At every origin ``t`` (from ``len(bars) - origins`` to the end) each model forecasts bar
``t`` from bars ``< t`` only. A model is fitted at the first origin and then every
``refit_every`` origins on the last ``window`` bars; between refits it takes each new bar
through ``update`` (the cheap step), exactly as it would live.

Scores, per model, over all origins:

- ``mae``, ``rmse``: errors of the predicted close;
- ``mase``: MAE divided by the in-sample MAE of the one-step random walk on the bars before
  the first origin (the same scale for every model, so the random walk scores about 1);
- ``directional_accuracy``: share of origins where the predicted move (forecast minus last
  close) has the sign of the actual move; a forecast of no move (the random walk) or an
  unchanged close scores 0.5, a coin flip;
- ``coverage_80``, ``coverage_95``: share of actual closes inside the 80% / 95% intervals;
- ``fit_s``: mean seconds per fit; ``predict_s``: mean seconds per forecast, update included.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tickwise.exceptions import DataError, InputError
from tickwise.forecast.base import CLOSE, FloatArray, Forecaster, as_series

LEVELS = (80, 95)
SCORE_KEYS = ("mae", "rmse", "mase", "directional_accuracy", "coverage_80", "coverage_95", "fit_s", "predict_s")


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ModelRun:
    """One model's one-step forecasts at every origin, and its timings."""

    mean: FloatArray
    lo: dict[int, FloatArray]
    hi: dict[int, FloatArray]
    fit_s: float
    predict_s: float
    fits: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class WalkForward:
    """Actual and last closes at each origin and every model's run.

    Examples
    --------
    >>> from tickwise.forecast.baselines import Naive
    >>> y = 100 + np.cumsum(np.random.default_rng(0).normal(size=80))
    >>> wf = walk_forward(y, {"naive": Naive}, origins=20, refit_every=5)
    >>> round(wf.scores()["naive"]["mase"], 2) > 0
    True
    """

    origins: np.ndarray
    actual: FloatArray
    last: FloatArray
    scale: float
    runs: dict[str, ModelRun] = field(default_factory=dict)

    def scores(self) -> dict[str, dict[str, float]]:
        """Per model: the scores named in `SCORE_KEYS` (see the module docstring)."""
        return {name: score_run(run, self.actual, self.last, self.scale) for name, run in self.runs.items()}

    def versus(self, baseline: str = "naive") -> dict[str, dict[str, float]]:
        """Per model: MAE relative to ``baseline`` and the Diebold-Mariano p-value (squared errors).

        A model beats the baseline only when its MAE ratio is below 1 and the p-value is small;
        a ratio of 0.998 with p = 0.6 is a tie.
        """
        if baseline not in self.runs:
            raise InputError(f"baseline must be one of the evaluated models {sorted(self.runs)}, was {baseline!r}")
        base_err = self.runs[baseline].mean - self.actual
        base_mae = float(np.mean(np.abs(base_err)))
        out = {}
        for name, run in self.runs.items():
            err = run.mean - self.actual
            out[name] = {"mae_ratio": float(np.mean(np.abs(err))) / base_mae if base_mae > 0 else float("nan"),
                         "dm_p_value": diebold_mariano(err, base_err)}
        return out

    def to_json(self) -> dict[str, Any]:
        """``{"models": {name: {mae, rmse, mase, directional_accuracy, coverage_80, coverage_95, fit_s, predict_s}}}``."""
        return {"models": self.scores()}


def diebold_mariano(errors: FloatArray, baseline_errors: FloatArray) -> float:
    """Two-sided p-value of the Diebold-Mariano test of equal squared-error loss (one-step).

    Returns 1.0 when the two error series are identical.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> e = rng.normal(size=300)
    >>> diebold_mariano(e, e), diebold_mariano(0.5 * e, e) < 0.001
    (1.0, True)
    """
    from statistics import NormalDist

    d = errors * errors - baseline_errors * baseline_errors
    sd = float(np.std(d, ddof=1)) if d.size > 1 else 0.0
    if sd == 0.0:
        return 1.0
    stat = float(np.mean(d)) / (sd / np.sqrt(d.size))
    return 2.0 * (1.0 - NormalDist().cdf(abs(stat)))


def score_run(run: ModelRun, actual: FloatArray, last: FloatArray, scale: float) -> dict[str, float]:
    err = run.mean - actual
    pred_move = np.sign(run.mean - last)
    true_move = np.sign(actual - last)
    hits = np.where((pred_move == 0) | (true_move == 0), 0.5, (pred_move == true_move).astype(np.float64))
    mae = float(np.mean(np.abs(err)))
    return {
        "mae": mae,
        "rmse": float(np.sqrt(np.mean(err * err))),
        "mase": mae / scale,
        "directional_accuracy": float(np.mean(hits)),
        "coverage_80": float(np.mean((actual >= run.lo[80]) & (actual <= run.hi[80]))),
        "coverage_95": float(np.mean((actual >= run.lo[95]) & (actual <= run.hi[95]))),
        "fit_s": run.fit_s,
        "predict_s": run.predict_s,
    }


def walk_forward(y: Any, models: dict[str, Callable[[], Forecaster]], *, origins: int = 250,
                 refit_every: int = 20, window: int | None = 1000) -> WalkForward:
    """Run every model over the last ``origins`` bars of ``y`` (closes or bars).

    ``models`` maps a name to a factory that returns an unfitted model. A fit uses at most
    the ``window`` bars before the origin (None: all of them).
    """
    if origins < 1:
        raise InputError(f"origins must be >= 1, was {origins}")
    if refit_every < 1:
        raise InputError(f"refit_every must be >= 1, was {refit_every}")
    if window is not None and window < 3:
        raise InputError(f"window must be >= 3 or None, was {window}")
    data = as_series(y, min_length=origins + 3, name="walk-forward evaluation")
    close = data[:, CLOSE] if data.ndim == 2 else data
    n = close.shape[0]
    start = n - origins
    lo_train = 0 if window is None else max(0, start - window)
    scale = float(np.mean(np.abs(np.diff(close[lo_train:start]))))
    if scale == 0.0:
        raise DataError("walk-forward evaluation needs a training period whose close moves, it was flat")
    result = WalkForward(origins=np.arange(start, n), actual=close[start:].copy(),
                         last=close[start - 1:n - 1].copy(), scale=scale)
    for name, factory in models.items():
        result.runs[name] = _run_model(name, factory, data, start, refit_every, window)
    return result


def _run_model(name: str, factory: Callable[[], Forecaster], data: FloatArray, start: int,
               refit_every: int, window: int | None) -> ModelRun:
    n = data.shape[0]
    mean = np.empty(n - start)
    lo = {lv: np.empty(n - start) for lv in LEVELS}
    hi = {lv: np.empty(n - start) for lv in LEVELS}
    fit_s = predict_s = 0.0
    fits = 0
    model: Forecaster | None = None
    for i, t in enumerate(range(start, n)):
        if model is None or i % refit_every == 0:
            first = 0 if window is None else max(0, t - window)
            t0 = time.perf_counter()
            try:
                model = factory().fit(data[first:t])
            except DataError as exc:
                raise DataError(f"{name} at origin {t}: {exc}") from None
            fit_s += time.perf_counter() - t0
            fits += 1
            t0 = time.perf_counter()
        else:
            t0 = time.perf_counter()
            model.update(data[t - 1])
        f = model.predict(1, level=LEVELS)
        predict_s += time.perf_counter() - t0
        mean[i] = f.mean[0]
        for lv in LEVELS:
            lo[lv][i] = f.lo[lv][0]
            hi[lv][i] = f.hi[lv][0]
    return ModelRun(mean=mean, lo=lo, hi=hi, fit_s=fit_s / max(fits, 1), predict_s=predict_s / (n - start), fits=fits)
