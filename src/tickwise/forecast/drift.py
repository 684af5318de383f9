"""A test for drift in forecast errors: are recent errors larger than in training?

Under the model, one-step errors are independent N(0, s^2). Then the ratio of the mean
squared recent error (``m`` errors) to the mean squared training error (``n`` errors)
follows an F(m, n) distribution; a small upper-tail p-value says the live errors have
grown (bias counts too, because squares are taken around zero, not around the mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tickwise.exceptions import DataError


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftTest:
    """The outcome of `error_drift`."""

    statistic: float
    p_value: float
    is_drift: bool


def error_drift(train_errors: npt.ArrayLike, recent_errors: npt.ArrayLike, *, alpha: float = 0.01) -> DriftTest:
    """Test whether recent errors are larger than training errors (one-sided F test).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> error_drift(rng.normal(0, 1, 500), rng.normal(0, 3, 30)).is_drift
    True
    >>> error_drift(rng.normal(0, 1, 500), rng.normal(0, 1, 30)).is_drift
    False
    """
    from scipy.stats import f as f_dist

    if not 0.0 < alpha < 1.0:
        raise DataError(f"alpha must be in (0, 1), was {alpha}")
    train = np.asarray(train_errors, dtype=np.float64)
    recent = np.asarray(recent_errors, dtype=np.float64)
    train = train[np.isfinite(train)]
    recent = recent[np.isfinite(recent)]
    if train.size < 5 or recent.size < 5:
        raise DataError(f"drift test needs at least 5 training and 5 recent errors, was {train.size} and {recent.size}")
    base = float(np.mean(train * train))
    if base == 0.0:
        raise DataError("drift test needs training errors that are not all zero, they were")
    stat = float(np.mean(recent * recent)) / base
    p = float(f_dist.sf(stat, recent.size, train.size))
    return DriftTest(statistic=stat, p_value=p, is_drift=p < alpha)


def drift_threshold(recent: int, train: int, *, alpha: float = 0.01) -> float:
    """The error-ratio above which `error_drift` reports drift (for a cheap check per bar).

    Examples
    --------
    >>> round(drift_threshold(30, 500), 2)
    1.74
    """
    from scipy.stats import f as f_dist

    return float(f_dist.isf(alpha, recent, train))
