"""Models: the shared interface, baselines against hand formulas, streaming == batch, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from tickwise.exceptions import DataError, InputError
from tickwise.forecast import (
    ETS,
    Arima,
    Drift,
    Forecast,
    LSTMForecaster,
    Naive,
    SeasonalNaive,
    make_model,
)
from tickwise.forecast.base import as_series

STREAMING = [Naive, Drift, lambda: SeasonalNaive(season_length=5)]


@pytest.mark.parametrize("factory", STREAMING)
def test_baseline_update_equals_refit_on_longer_series(factory, msft):
    y = msft[-300:]
    streamed = factory().fit(y[:280])
    for bar in y[280:]:
        streamed.update(bar)
    refit = factory().fit(y)
    a, b = streamed.predict(3), refit.predict(3)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12)
    np.testing.assert_allclose(a.se, b.se, rtol=1e-9)


def test_naive_forecast_matches_hand_formula(msft):
    close = msft[-200:, 3]
    f = Naive().forecast(msft[-200:], 4, level=(80, 95))
    sigma = np.sqrt(np.mean(np.diff(close) ** 2))
    np.testing.assert_allclose(f.mean, close[-1])
    np.testing.assert_allclose(f.se, sigma * np.sqrt([1, 2, 3, 4]))
    np.testing.assert_allclose(f.hi[95] - f.mean, 1.959963984540054 * f.se)


def test_drift_forecast_matches_hand_formula(msft):
    close = msft[-200:, 3]
    f = Drift().forecast(close, 2)
    slope = (close[-1] - close[0]) / (len(close) - 1)
    np.testing.assert_allclose(f.mean, close[-1] + slope * np.array([1, 2]))


def test_seasonal_naive_repeats_last_season(msft):
    close = msft[-50:, 3]
    f = SeasonalNaive(season_length=5).forecast(close, 7)
    np.testing.assert_allclose(f.mean, np.concatenate([close[-5:], close[-5:-3]]))


def test_ets_update_matches_statsforecast_forward(msft):
    from statsforecast.models import AutoETS

    close = msft[-300:, 3]
    model = ETS().fit(close[:290])
    for v in close[290:]:
        model.update(v)
    ref = AutoETS(model="ZZN").fit(close[:290]).forward(y=close, h=2, level=[95])
    np.testing.assert_allclose(model.predict(2).mean, ref["mean"], rtol=1e-10)


@pytest.mark.parametrize("name", ["naive", "drift", "seasonal_naive", "ets", "arima"])
def test_univariate_ohlc_is_coherent_and_open_is_last_close(name, aapl_hourly):
    f = make_model(name).forecast(aapl_hourly[-300:], 5)
    assert f.open[0] == aapl_hourly[-1, 3]
    assert np.all(f.low <= np.minimum(f.open, f.mean)) and np.all(np.maximum(f.open, f.mean) <= f.high)
    assert np.all(f.lo[95] <= f.lo[80]) and np.all(f.hi[80] <= f.hi[95])


def test_forecast_rejects_incoherent_ohlc():
    with pytest.raises(ValueError, match="low <= open, close <= high"):
        Forecast(mean=np.array([10.0]), se=np.array([1.0]), open=np.array([10.0]),
                 high=np.array([9.0]), low=np.array([8.0]))


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.array([1.0, 2.0]), "at least 20 bars, was 2"),
        (np.full(50, 7.0), "constant series, every close was 7"),
        (np.r_[np.linspace(1, 2, 30), np.nan, np.linspace(2, 3, 20)], "found 1 NaN/inf \\(first at position 30\\)"),
        (np.r_[np.linspace(1, 2, 30), -1.0, np.linspace(2, 3, 20)], "prices > 0"),
        (np.ones((30, 3)), "columns open, high, low, close, volume, was 3 columns"),
    ],
)
def test_arima_bad_input_raises_clear_data_error(y, message):
    with pytest.raises(DataError, match=message):
        Arima().fit(y)


def test_lstm_needs_bars_not_closes(msft):
    with pytest.raises(DataError, match="needs OHLCV bars"):
        LSTMForecaster().fit(msft[:, 3])


def test_arima_stationary_order_on_trend_gives_data_error(msft):
    with pytest.raises(DataError, match="could not be fitted"):
        Arima(order=(1, 0, 1)).fit(msft[-400:, 3])


def test_predict_bad_horizon_and_level_raise_input_error(msft):
    model = Naive().fit(msft[-50:])
    with pytest.raises(InputError, match="horizon must be an integer >= 1, was 0"):
        model.predict(0)
    with pytest.raises(InputError, match="between 0 and 100"):
        model.predict(1, level=(100,))


def test_make_model_unknown_name_lists_choices():
    with pytest.raises(InputError, match="model must be one of naive, drift"):
        make_model("prophet")


def test_as_series_accepts_lists():
    assert as_series([1.0, 2.0, 3.0], min_length=3, name="x").dtype == np.float64
