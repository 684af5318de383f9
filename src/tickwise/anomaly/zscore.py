"""The band detector: the largest absolute z-score of the current bar's features."""

from __future__ import annotations

import numpy as np

FloatArray = np.ndarray


class ZScoreModel:
    """Score = max |z| over the current row's features (rolling or EWMA bands).

    Examples
    --------
    >>> m = ZScoreModel()
    >>> float(m.score_windows(np.array([[[1.0, -6.0, 2.0]]]))[0])
    6.0
    """

    lookback = 1
    needs_fit = False

    def __init__(self, *, name: str = "zscore") -> None:
        self.name = name

    def fit(self, windows: FloatArray) -> None:
        """Nothing to learn: the bands are the model."""

    def score_windows(self, windows: FloatArray) -> FloatArray:
        return np.abs(windows[:, -1, :]).max(axis=1)

    def attribute(self, windows: FloatArray) -> FloatArray:
        return np.abs(windows[:, -1, :])

    def clone(self) -> ZScoreModel:
        return ZScoreModel(name=self.name)
