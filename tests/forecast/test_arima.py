"""ARIMA: parity with statsmodels, the O(1) Kalman update equals statsforecast's forward."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tickwise.forecast import Arima


@pytest.mark.parametrize(
    ("series", "order", "mean"),
    [("log_close", (2, 1, 0), False), ("close", (0, 1, 1), False), ("log_volume", (1, 0, 1), True)],
)
def test_arima_fixed_order_matches_statsmodels_to_1e4(msft, series, order, mean):
    from statsmodels.tsa.arima.model import ARIMA as StatsmodelsARIMA

    bars = msft[-500:]
    y = {"log_close": np.log(bars[:, 3]), "close": bars[:, 3], "log_volume": np.log(bars[:, 4])}[series]
    ours = Arima(order=order, include_mean=mean).fit(y).predict(5, level=(95,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = StatsmodelsARIMA(y, order=order, trend="c" if mean else "n").fit()
    fc = ref.get_forecast(5)
    np.testing.assert_allclose(ours.mean, fc.predicted_mean, atol=1e-4, rtol=0)
    # statsforecast divides the residual sum of squares by (n_used - n_params), statsmodels by n_used
    n_used = len(y) - order[1]
    k = order[0] + order[2] + int(mean)
    np.testing.assert_allclose(ours.se * np.sqrt((n_used - k) / n_used), fc.se_mean, rtol=2e-3)


@pytest.mark.parametrize("order", [None, (2, 1, 1), (1, 1, 0)])
def test_arima_kalman_update_equals_statsforecast_forward(msft, order):
    from statsforecast.models import ARIMA, AutoARIMA

    close = msft[-400:, 3]
    ours = Arima(order=order, include_mean=False).fit(close[:350])
    for v in close[350:]:
        ours.update(v)
    ref_model = AutoARIMA() if order is None else ARIMA(order=order, include_mean=False, method="CSS-ML")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ref_model.fit(close[:350]).forward(y=close, h=3, level=[95])
    f = ours.predict(3, level=(95,))
    np.testing.assert_allclose(f.mean, ref["mean"], rtol=1e-10)
    np.testing.assert_allclose(f.hi[95], ref["hi-95"], rtol=1e-8)


def test_arima_dumps_loads_roundtrip_predicts_the_same(msft):
    model = Arima().fit(msft[-300:])
    copy = Arima.loads(model.dumps())
    for bar in msft[-5:]:
        model.update(bar)
        copy.update(bar)
    a, b = model.predict(2), copy.predict(2)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.high, b.high)
