"""The model registry in the warehouse, and the drift test on real errors."""

from __future__ import annotations

import numpy as np
import pytest

from tickwise.exceptions import DataError, NotFoundError
from tickwise.forecast import LSTMForecaster
from tickwise.forecast.drift import drift_threshold, error_drift
from tickwise.forecast.registry import ModelRegistry


@pytest.fixture
def registry(settings):
    from tickwise.app import build_warehouse

    warehouse = build_warehouse(settings)
    yield ModelRegistry(warehouse)
    warehouse.close()


def test_registry_numbers_versions_and_promotes_exactly_one(registry):
    a = registry.register("arima", params={"order": None}, metrics={"mae": 2.0}, train_start=0, train_end=86_400_000_000_000)
    b = registry.register("arima", params={"order": [1, 1, 1]}, metrics={"mae": 1.5})
    registry.register("naive", params={})
    assert (a.version, b.version) == (1, 2)
    registry.promote("arima", 1)
    registry.promote("arima", 2)
    versions = registry.versions("arima")
    assert [v.promoted for v in versions] == [False, True]
    assert registry.promoted("arima").params == {"order": [1, 1, 1]}
    assert registry.promoted("naive") is None
    assert versions[0].train_end == 86_400_000_000_000 and versions[0].metrics == {"mae": 2.0}


def test_registry_unknown_version_lists_known_ones(registry):
    registry.register("arima", params={})
    with pytest.raises(NotFoundError, match=r"model arima version 7 is not registered \(versions: 1\)"):
        registry.promote("arima", 7)


def test_registry_lstm_artifact_roundtrip_predicts_the_same(registry, msft):
    model = LSTMForecaster(window=8, hidden=8, epochs=2).fit(msft[-200:])
    registry.register("lstm", params=model.params, artifact=model.dumps())
    loaded = LSTMForecaster.loads(registry.get("lstm", 1).artifact)
    np.testing.assert_array_equal(model.predict_next([msft[-20:]]), loaded.predict_next([msft[-20:]]))


def test_drift_test_flags_2008_errors_against_2005_errors(sp500):
    calm = np.diff(sp500[1500:1750, 3])  # random-walk errors in 2005
    crash = np.diff(sp500[2440:2471, 3])  # October 2008
    later_calm = np.diff(sp500[1750:1781, 3])  # early 2006
    flagged = error_drift(calm, crash)
    assert flagged.is_drift and flagged.p_value < 1e-6
    assert not error_drift(calm, later_calm).is_drift
    assert flagged.statistic > drift_threshold(30, 249)


def test_drift_test_too_few_errors_is_a_data_error():
    with pytest.raises(DataError, match="at least 5 training and 5 recent errors, was 100 and 2"):
        error_drift(np.ones(100), np.ones(2))
