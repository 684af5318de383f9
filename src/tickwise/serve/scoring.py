"""Score a series submitted to the API for anomalies.

The built-in ``zscore`` detector is a trailing band: each point is compared with the mean
and standard deviation of the ``window`` points before it (never after, so a score does not
change when later points arrive). ``ewma``, ``iforest`` and ``autoencoder`` come from
`tickwise.anomaly` (imported only when asked for); their threshold is in their own score
units and their explanations are theirs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from tickwise.exceptions import InputError


@dataclass(frozen=True, slots=True)
class SeriesScores:
    """Per-point scores (NaN while warming up), the threshold used, and explanations."""

    detector: str
    scores: np.ndarray
    threshold: float
    explanations: list[str]

    @property
    def is_anomaly(self) -> np.ndarray:
        return np.nan_to_num(self.scores, nan=0.0) > self.threshold


def trailing_zscore(values: np.ndarray, *, window: int) -> np.ndarray:
    """Return |x_t - mean| / std over the ``window`` points before each point (NaN before).

    Examples
    --------
    >>> s = trailing_zscore(np.array([1.0, 2.0, 1.0, 2.0, 1.0, 9.0]), window=4)
    >>> bool(s[5] > 5)
    True
    >>> bool(np.isnan(s[:4]).all())
    True
    """
    if window < 2:
        raise ValueError(f"window must be >= 2, was {window}")
    raw = np.asarray(values, dtype=np.float64)
    out = np.full(raw.shape, np.nan)
    if raw.size <= window:
        return out
    # z-scores do not change under shift and scale: centre and scale first, so squares
    # neither overflow for huge values nor lose precision for prices far from zero
    peak = float(np.max(np.abs(raw)))
    scaled = raw / peak if peak > 0 else raw
    x = scaled - np.median(scaled)
    csum = np.concatenate(([0.0], np.cumsum(x)))
    csq = np.concatenate(([0.0], np.cumsum(x * x)))
    idx = np.arange(window, x.size)
    total = csum[idx] - csum[idx - window]
    total_sq = csq[idx] - csq[idx - window]
    mean = total / window
    var = np.maximum(total_sq / window - mean * mean, 0.0)
    std = np.sqrt(var)
    dev = np.abs(x[idx] - mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 1e-12, dev / std, np.where(dev > 1e-12, np.inf, 0.0))
    out[idx] = z
    return out


def score_series(values: list[float] | np.ndarray, *, detector: str = "zscore", window: int = 20,
                 threshold: float = 3.0) -> SeriesScores:
    """Score a series with a named detector.

    Examples
    --------
    >>> r = score_series([10.0, 10.1, 9.9, 10.0, 10.1, 9.9, 15.0], window=5, threshold=3.0)
    >>> [int(i) for i in np.flatnonzero(r.is_anomaly)]
    [6]
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"values must be a non-empty list of numbers, was shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError("values must be finite numbers, was a list with NaN or infinity")
    if detector == "zscore":
        scores = trailing_zscore(x, window=window)
        explanations = []
        for i, z in enumerate(scores):
            if np.isfinite(z) and z > threshold:
                ref = x[max(0, i - window):i]
                side = "above" if x[i] > ref.mean() else "below"
                explanations.append(f"value {x[i]:.6g} is {z:.1f} sigma {side} its {window}-point mean")
            elif np.isinf(z):
                explanations.append(f"value {x[i]:.6g} breaks a constant {window}-point run")
            else:
                explanations.append("")
        return SeriesScores("zscore", scores, threshold, explanations)
    return _score_with_package(x, detector=detector, window=window, threshold=threshold)


def _score_with_package(x: np.ndarray, *, detector: str, window: int, threshold: float) -> SeriesScores:
    try:
        package = importlib.import_module("tickwise.anomaly")
    except ImportError:
        package = None
    names = tuple(getattr(package, "DETECTORS", ()))
    if package is None or detector not in names:
        known = ", ".join(["zscore", *[n for n in names if n != "zscore"]])
        raise InputError(f"detector must be one of {known}, was {detector!r}")
    if x.size > 20_000:
        raise InputError(f"values for detector {detector!r} must number at most 20000, was {x.size}")
    spec = package.FeatureSpec.values(("value",))
    model = package.make_detector(detector, spec=spec, window=window)
    data = {"value": x}
    scores = model.fit(data).score(data)
    values = np.asarray(scores.score, dtype=np.float64)
    explanations = [
        model.explain(scores, i).text if np.isfinite(v) and v > threshold else ""
        for i, v in enumerate(values)
    ]
    return SeriesScores(detector, values, threshold, explanations)
