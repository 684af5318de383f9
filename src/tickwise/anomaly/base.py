"""The contract of anomaly models, and their refit schedule.

A detector is two parts: features (`tickwise.anomaly.features` raw rows, z-scored against
their own past by `tickwise.anomaly.bands`) and a *model* that maps windows of z-scored
feature rows, shape ``(m, lookback, n_features)``, to one score per window (higher = more
anomalous) and to per-feature contributions for explanations. `Detector` (one series,
streaming and batch) and `MultiSymbolDetector` (many symbols, vectorised) both drive a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

FloatArray = np.ndarray


class WindowModel(Protocol):
    """Scores windows of z-scored feature rows."""

    #: detector name written in the anomalies table
    name: str
    #: how many feature rows (the current one last) a window holds
    lookback: int
    #: whether `fit` must be called before `score_windows`
    needs_fit: bool

    def fit(self, windows: FloatArray) -> None:
        """Train on windows ``(n, lookback, n_features)`` of the past."""
        ...

    def score_windows(self, windows: FloatArray) -> FloatArray:
        """One score per window, higher = more anomalous."""
        ...

    def attribute(self, windows: FloatArray) -> FloatArray:
        """Per-feature contributions ``(m, n_features)``; larger = more responsible."""
        ...

    def clone(self) -> WindowModel:
        """A new unfitted model with the same settings."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """When a model is (re)trained on the windows seen so far.

    The first fit happens once ``min_train`` ready windows were learned; then every
    ``refit_every`` windows (never again if None), each time on the newest ``max_train``.

    Examples
    --------
    >>> Schedule(min_train=500, refit_every=1000).max_train
    5000
    """

    min_train: int = 500
    refit_every: int | None = 1000
    max_train: int = 5000

    def __post_init__(self) -> None:
        if self.min_train < 10:
            raise ValueError(f"min_train must be >= 10, was {self.min_train}")
        if self.refit_every is not None and self.refit_every < 1:
            raise ValueError(f"refit_every must be >= 1 or None, was {self.refit_every}")
        if self.max_train < self.min_train:
            raise ValueError(f"max_train must be >= min_train ({self.min_train}), was {self.max_train}")

    def due(self, *, fitted: bool, n_train: int, since_fit: int) -> bool:
        """Whether to fit now."""
        if not fitted:
            return n_train >= self.min_train
        return self.refit_every is not None and since_fit >= self.refit_every
