"""The compiled tree walk scores exactly as scikit-learn's own predict, on every kind of split."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from tickwise.anomaly import learned
from tickwise.anomaly.trees import FlatTrees


def _data(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 - x[:, 2] * x[:, 3] + rng.normal(0, 0.5, n) > 0.5).astype(int)
    x[rng.random(n) < 0.05, 1] = np.nan  # missing values in training: some splits send them left, some right
    x[x[:, 4] > 1.2, 4] = np.nan  # missing values that carry information
    y[np.isnan(x[:, 4])] = 1
    return x, y


@pytest.fixture(scope="module")
def model() -> HistGradientBoostingClassifier:
    x, y = _data(0)
    return HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15, random_state=0).fit(x, y)


def test_raw_scores_and_probabilities_equal_scikit_learn_bit_for_bit(model):
    x, _ = _data(1, 2000)
    x[::11, 0] = np.nan  # missing where training had none: scikit-learn's default direction
    x[5, :] = np.nan
    x[6, 2] = np.inf
    flat = FlatTrees(model)
    missing = flat.missing_left[~flat.is_leaf]
    assert missing.any() and not missing.all()  # both directions for missing values are walked
    np.testing.assert_array_equal(flat.raw(x), model.decision_function(x))
    np.testing.assert_array_equal(flat.proba(x), model.predict_proba(x)[:, 1])
    np.testing.assert_array_equal(flat.raw(np.asfortranarray(x[:7])), model.decision_function(x[:7]))
    assert flat.raw(x[:0]).shape == (0,)


def test_ensemble_log_odds_equal_the_members_predict_proba():
    training = learned.Training(members=2, copies=1, max_iter=15, seed=21, exclude=("GOOG", "IBM", "MSFT"))
    ensemble = learned.trained(training)
    rng = np.random.default_rng(2)
    x = rng.normal(0, 3, size=(400, ensemble.members[0].n_features_in_))  # type: ignore[attr-defined]
    x[::13, 5] = np.nan
    expected = np.zeros(x.shape[0])
    for m in ensemble.members:
        p = np.clip(m.predict_proba(x)[:, 1], learned.EPS, 1.0 - learned.EPS)  # type: ignore[attr-defined]
        expected += np.log(p) - np.log1p(-p)
    np.testing.assert_array_equal(ensemble.log_odds(x), expected / 2)


def test_rows_of_another_width_are_a_clear_error(model):
    with pytest.raises(ValueError, match="expected rows of 6 features"):
        FlatTrees(model).raw(np.zeros((3, 5)))


def test_models_it_cannot_walk_are_refused():
    x, _ = _data(3, 600)
    three = HistGradientBoostingClassifier(max_iter=5).fit(np.nan_to_num(x), np.arange(600) % 3)
    with pytest.raises(ValueError, match="binary"):
        FlatTrees(three)
    cats = np.column_stack([np.arange(600) % 4, np.nan_to_num(x[:, 0])])
    categorical = HistGradientBoostingClassifier(max_iter=5, categorical_features=[0]).fit(cats, (np.arange(600) % 4 == 1))
    with pytest.raises(ValueError, match="categorical"):
        FlatTrees(categorical)
