from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import talib

from tests.conftest import FIXTURES, shared_file
from tickwise.exceptions import InputError
from tickwise.indicators import IndicatorSet, compute_indicators, parse_indicators
from tickwise.sources.files import read_bars

ALL = "sma_9,ema_12,wma_10,rsi_14,macd,bbands_20,atr_14,obv,vwap,vwap_20,volume_sma_20"


def test_compute_indicators_per_symbol_equals_talib_per_symbol() -> None:
    bars = read_bars(shared_file("stocks_daily_quandl_wiki_bokeh.csv"))
    shuffled = bars.sample(fraction=1.0, shuffle=True, seed=3)
    out = compute_indicators(shuffled, "sma_21,rsi_14")
    assert out.height == bars.height
    for symbol in ("FB", "GOOG", "IBM"):
        part = out.filter(pl.col("symbol") == symbol)
        close = part["close"].to_numpy()
        np.testing.assert_allclose(part["rsi_14"].fill_null(np.nan).to_numpy(), talib.RSI(close, 14), rtol=1e-9)
        np.testing.assert_allclose(part["sma_21"].fill_null(np.nan).to_numpy(), talib.SMA(close, 21), rtol=1e-9)


def test_compute_indicators_future_bars_changed_past_rows_identical() -> None:
    bars = read_bars(FIXTURES / "aapl_daily_wiki.csv")
    cut = 500
    before = compute_indicators(bars, ALL).head(cut)
    noise = np.random.default_rng(1).uniform(0.5, 2.0, bars.height - cut)
    changed = bars.with_columns(
        pl.concat([pl.Series(np.ones(cut)), pl.Series(noise)]).alias("k")
    ).with_columns(
        [(pl.col(c) * pl.col("k")).alias(c) for c in ("open", "high", "low", "close", "volume")]
    ).drop("k")
    after = compute_indicators(changed, ALL).head(cut)
    assert after.equals(before)


def test_compute_indicators_vwap_keeps_bar_vwap_as_bar_vwap() -> None:
    bars = read_bars(FIXTURES / "aapl_daily_wiki.csv").with_columns(vwap=pl.col("close"))
    out = compute_indicators(bars, "vwap")
    assert out["bar_vwap"].equals(bars["close"].alias("bar_vwap"))
    assert out["vwap"][0] == pytest.approx((bars["high"][0] + bars["low"][0] + bars["close"][0]) / 3)


def test_compute_indicators_missing_input_column_names_it() -> None:
    with pytest.raises(InputError, match="missing \\['high', 'low'\\]"):
        compute_indicators(pl.DataFrame({"close": [1.0, 2.0]}), "atr_14")


def test_indicator_set_every_bar_equals_batch_columns(aapl: dict) -> None:
    specs = parse_indicators(ALL)
    batch = {}
    for spec in specs:
        batch.update(spec.batch(aapl))
    live = IndicatorSet(specs)
    rows = []
    for h, lo, c, v in zip(aapl["high"], aapl["low"], aapl["close"], aapl["volume"], strict=True):
        live.update(h, lo, c, v)
        rows.append(live.values())
    assert live.is_ready
    for column in live.columns:
        np.testing.assert_allclose([r[column] for r in rows], batch[column], rtol=1e-9, atol=0)


def test_indicator_reset_then_replay_gives_same_values(aapl: dict) -> None:
    live = IndicatorSet(ALL)
    runs = []
    for start in (300, 0):
        live.reset()
        for h, lo, c, v in zip(aapl["high"][start:start + 100], aapl["low"][start:start + 100],
                               aapl["close"][start:start + 100], aapl["volume"][start:start + 100], strict=True):
            live.update(h, lo, c, v)
        runs.append(live.values())
    fresh = IndicatorSet(ALL)
    for h, lo, c, v in zip(aapl["high"][:100], aapl["low"][:100], aapl["close"][:100], aapl["volume"][:100],
                           strict=True):
        fresh.update(h, lo, c, v)
    assert runs[1] == fresh.values() != runs[0]


def test_rsi_flat_prices_is_zero_like_talib() -> None:
    x = np.full(30, 12.5)
    spec = parse_indicators("rsi_14")[0]
    assert spec.batch({"close": x})["rsi_14"][-1] == talib.RSI(x, 14)[-1] == 0.0
