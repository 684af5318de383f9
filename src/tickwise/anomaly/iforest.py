"""Isolation Forest over the current bar's z-scored features, explained with SHAP.

The forest sees the z-scores of return, range, log volume and gap (each against its own
past), clipped to ±`CLIP`. Its score is ``-score_samples`` (higher = shorter isolation
paths = more anomalous). Training windows with any |z| above ``train_max_z`` are left out
of the fit: otherwise earlier anomalies of the same shape (a burst of volume spikes) form a
small cluster and mask the next ones.

A forest cannot rank a value beyond the range it was trained on: every split puts 12 sigma
and 7 sigma on the same side, and a feature that never varied in training (a frozen bar's
range) is never split on. So the score adds an extrapolating term: for each feature, how
far ``|z|`` lies beyond the largest ``|z|`` the forest was trained on, times `EXCESS_WEIGHT`
per sigma. Inside the training range the score is the forest's alone; beyond it, it grows
with the size of the excursion. Explanations come from SHAP's TreeExplainer: a feature's
contribution is how much it shortens the expected path (minus its SHAP value), plus its
share of the extrapolating term.
"""

from __future__ import annotations

import numpy as np

FloatArray = np.ndarray
CLIP = 50.0
#: Score added per sigma a feature lies beyond its training range.
EXCESS_WEIGHT = 0.05


class IsolationForestModel:
    """Isolation Forest on windows of z-scored features (the newest ``lookback`` rows).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> m = IsolationForestModel(n_estimators=50)
    >>> m.fit(rng.standard_normal((500, 1, 4)))
    >>> w = np.zeros((2, 1, 4)); w[1, 0, 2] = 9.0
    >>> s = m.score_windows(w); bool(s[1] > s[0])
    True
    >>> int(np.argmax(m.attribute(w[1:])[0]))
    2
    """

    name = "iforest"
    needs_fit = True

    def __init__(self, *, n_estimators: int = 100, max_samples: int = 256, lookback: int = 1,
                 train_max_z: float = 6.0, seed: int = 0) -> None:
        if n_estimators < 1:
            raise ValueError(f"n_estimators must be >= 1, was {n_estimators}")
        if lookback < 1:
            raise ValueError(f"lookback must be >= 1, was {lookback}")
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.lookback = lookback
        self.train_max_z = train_max_z
        self.seed = seed
        self.forest_ = None
        self.bounds_: FloatArray | None = None
        self._explainer = None

    def _x(self, windows: FloatArray) -> FloatArray:
        return np.clip(windows.reshape(windows.shape[0], -1), -CLIP, CLIP)

    def fit(self, windows: FloatArray) -> None:
        from sklearn.ensemble import IsolationForest

        x = self._x(windows)
        calm = np.abs(x).max(axis=1) <= self.train_max_z
        if calm.sum() >= max(10, x.shape[0] // 2):
            x = x[calm]
        self.forest_ = IsolationForest(n_estimators=self.n_estimators,
                                       max_samples=min(self.max_samples, x.shape[0]),
                                       random_state=self.seed).fit(x)
        self.bounds_ = np.abs(x).max(axis=0)
        self._explainer = None

    def _excess(self, x: FloatArray) -> FloatArray:
        """Per column: sigmas beyond the training range, times `EXCESS_WEIGHT`."""
        return EXCESS_WEIGHT * np.maximum(np.abs(x) - self.bounds_, 0.0)

    def score_windows(self, windows: FloatArray) -> FloatArray:
        if self.forest_ is None:
            raise ValueError("model must be fitted before scoring, was not fitted")
        x = self._x(windows)
        return -self.forest_.score_samples(x) + self._excess(x).sum(axis=1)

    def attribute(self, windows: FloatArray) -> FloatArray:
        if self.forest_ is None:
            raise ValueError("model must be fitted before explaining, was not fitted")
        if self._explainer is None:
            import shap

            self._explainer = shap.TreeExplainer(self.forest_)
        x = self._x(windows)
        values = -np.asarray(self._explainer.shap_values(x)) + self._excess(x)
        f = windows.shape[2]
        # a window's contribution per feature: sum over its rows
        return values.reshape(windows.shape[0], self.lookback, f).sum(axis=1)

    def clone(self) -> IsolationForestModel:
        return IsolationForestModel(n_estimators=self.n_estimators, max_samples=self.max_samples,
                                    lookback=self.lookback, train_max_z=self.train_max_z, seed=self.seed)
