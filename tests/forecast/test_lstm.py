"""LSTM: reproducible, coherent by construction, serializable."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwise.forecast import LSTMForecaster
from tickwise.forecast.lstm import bar_features, bar_targets

SMALL = {"window": 10, "hidden": 8, "epochs": 3}


def test_lstm_same_seed_same_forecast(msft):
    a = LSTMForecaster(**SMALL, seed=3).forecast(msft[-400:], 2)
    b = LSTMForecaster(**SMALL, seed=3).forecast(msft[-400:], 2)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.high, b.high)
    c = LSTMForecaster(**SMALL, seed=4).forecast(msft[-400:], 2)
    assert not np.array_equal(a.mean, c.mean)


def test_lstm_forecast_is_coherent_and_intervals_nest(aapl_hourly):
    f = LSTMForecaster(**SMALL).forecast(aapl_hourly[-500:], 4)
    assert np.all(f.low <= np.minimum(f.open, f.mean)) and np.all(np.maximum(f.open, f.mean) <= f.high)
    assert np.all(f.lo[95] <= f.lo[80]) and np.all(f.lo[80] <= f.hi[80]) and np.all(f.hi[80] <= f.hi[95])


def test_lstm_dumps_loads_predicts_the_same(msft):
    model = LSTMForecaster(**SMALL).fit(msft[-300:])
    copy = LSTMForecaster.loads(model.dumps())
    copy.history_ = model.history_.copy()
    np.testing.assert_array_equal(model.predict(2).mean, copy.predict(2).mean)


def test_lstm_targets_rebuild_the_bar(msft):
    bars = msft[-20:]
    t = bar_targets(bars)
    c = bars[:-1, 3]
    o, cl = c * np.exp(t[:, 0]), c * np.exp(t[:, 1])
    np.testing.assert_allclose(np.maximum(o, cl) * np.exp(t[:, 2]), bars[1:, 1], rtol=1e-12)
    np.testing.assert_allclose(np.minimum(o, cl) * np.exp(-t[:, 3]), bars[1:, 2], rtol=1e-12)
    assert bar_features(bars).shape == (19, 5)


_MODEL: list[LSTMForecaster] = []


def _trained(msft: np.ndarray) -> LSTMForecaster:
    if not _MODEL:
        _MODEL.append(LSTMForecaster(**SMALL).fit(msft[-300:]))
    return _MODEL[0]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-0.2, 0.2), min_size=11, max_size=11), st.floats(0.01, 1e5))
def test_lstm_any_window_gives_coherent_bar(returns, level):
    import torch

    torch.set_num_threads(1)
    from tests.forecast.conftest import load

    model = _trained(load("msft_daily_pmdarima.csv", last=600))
    close = level * np.exp(np.cumsum(returns))
    bars = np.stack([close, close * 1.02, close * 0.97, close, np.full(11, 1e6)], axis=1)
    o, h, lo, c = model.predict_next([bars])[0]
    assert lo <= min(o, c) <= max(o, c) <= h
