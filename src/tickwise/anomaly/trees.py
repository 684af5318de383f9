"""Boosted trees evaluated in one compiled loop: the classifier's scoring path.

scikit-learn's `HistGradientBoostingClassifier.predict_proba` walks its trees one call per
tree (a Python call and an OpenMP region each): for the classifier's 4 x 300 trees that
overhead, not the walking, is most of the cost of scoring a step of 500 bars. `FlatTrees`
copies a fitted model's trees into flat node arrays once, and `trees_kernel` walks them all
in one call with scikit-learn's rule (a missing value goes where the split sends missing
values; otherwise left when the value is at most the threshold), adding the leaf values in
scikit-learn's order from its baseline, so the raw score is the same float, bit for bit
(tests/anomaly/test_trees.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

from tickwise.anomaly.kernels import trees_kernel

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class FlatTrees:
    """The trees of one fitted binary `HistGradientBoostingClassifier`, as flat arrays."""

    def __init__(self, model: Any) -> None:
        if getattr(model, "n_trees_per_iteration_", None) != 1:
            raise ValueError("FlatTrees takes a binary HistGradientBoostingClassifier (one tree per iteration)")
        nodes = [p.nodes for (p,) in model._predictors]
        if any(n["is_categorical"].any() for n in nodes):
            raise ValueError("FlatTrees does not take categorical splits")
        sizes = np.array([n.size for n in nodes], dtype=np.int64)
        offsets = np.cumsum(sizes) - sizes  # each tree's root in the flat arrays
        flat = np.concatenate([np.zeros(0, dtype=PREDICTOR_RECORD_DTYPE), *nodes])
        shift = np.repeat(offsets, sizes)
        self.n_features = int(model.n_features_in_)
        self.feature = flat["feature_idx"].astype(np.int64)
        self.threshold = flat["num_threshold"].astype(np.float64)
        self.missing_left = flat["missing_go_to_left"].astype(np.bool_)
        self.is_leaf = flat["is_leaf"].astype(np.bool_)
        # a leaf's children are unused (0): shifted or not, the walk never follows them
        self.left = flat["left"].astype(np.int64) + shift
        self.right = flat["right"].astype(np.int64) + shift
        self.value = flat["value"].astype(np.float64)
        self.roots = offsets
        self.baseline = float(np.asarray(model._baseline_prediction).reshape(-1)[0])

    def raw(self, x: FloatArray) -> FloatArray:
        """The model's raw score (log-odds) per row of ``x``: ``decision_function``."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {x.shape}")
        out = np.empty(x.shape[0])
        trees_kernel(x, self.feature, self.threshold, self.missing_left, self.left, self.right,
                     self.is_leaf, self.value, self.roots, self.baseline, out)
        return out

    def proba(self, x: FloatArray) -> FloatArray:
        """P(class 1) per row: ``predict_proba(x)[:, 1]``."""
        return expit(self.raw(x))
