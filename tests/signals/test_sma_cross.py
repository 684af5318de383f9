from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.conftest import FIXTURES, shared_file
from tickwise.signals import BUY, HOLD, SELL, SmaCross, SmaCrossParams, sma_cross_signals
from tickwise.sources.files import read_bars


def streaming_signals(bars: pl.DataFrame, params: SmaCrossParams) -> pl.DataFrame:
    rows = []
    states: dict[tuple[str, str], SmaCross] = {}
    for row in bars.sort(["symbol", "timeframe", "ts"]).iter_rows(named=True):
        state = states.setdefault((row["symbol"], row["timeframe"]), SmaCross(params))
        state.update(row["close"], row["volume"])
        v = state.value
        rows.append({"symbol": row["symbol"], "ts": row["ts"], "signal": v.signal, "reason": v.reason,
                     "fast": v.fast, "slow": v.slow, "volume_ratio": v.volume_ratio})
    return pl.DataFrame(rows)


@pytest.mark.parametrize("params", [SmaCrossParams(), SmaCrossParams(fast=5, slow=30, volume_window=40,
                                                                      volume_factor=1.2)])
def test_sma_cross_streaming_equals_batch_every_bar_real_data(params: SmaCrossParams) -> None:
    bars = read_bars(shared_file("stocks_daily_quandl_wiki_bokeh.csv"))
    batch = sma_cross_signals(bars, fast=params.fast, slow=params.slow, volume_window=params.volume_window,
                              volume_factor=params.volume_factor)
    live = streaming_signals(bars, params)
    assert batch["signal"].to_list() == live["signal"].to_list()
    assert batch["reason"].to_list() == live["reason"].to_list()
    for c in ("fast", "slow", "volume_ratio"):
        a, b = batch[c].to_numpy(), live[c].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)), c
        np.testing.assert_array_equal(a, b)
    counts = batch["signal"].value_counts().sort("signal")
    assert set(counts["signal"]) == {BUY, HOLD, SELL}


def test_sma_cross_signals_follow_the_written_rule_on_real_bars() -> None:
    bars = read_bars(FIXTURES / "aapl_daily_wiki.csv")
    out = sma_cross_signals(bars)
    close, volume = bars["close"].to_numpy(), bars["volume"].to_numpy()
    for t in range(bars.height):
        fast, slow = close[max(0, t - 8): t + 1].mean(), close[max(0, t - 20): t + 1].mean()
        signal = out["signal"][t]
        if t < 21:
            assert signal == HOLD and out["reason"][t].startswith("warming up")
            continue
        prev_f, prev_s = close[t - 9: t].mean(), close[t - 21: t].mean()
        confirmed = volume[t] > 1.5 * volume[t - 20: t].mean()
        expected = (BUY if prev_f <= prev_s and fast > slow and confirmed
                    else SELL if prev_f >= prev_s and fast < slow and confirmed else HOLD)
        assert signal == expected, (t, out.row(t))
        assert out["volume_ratio"][t] == pytest.approx(volume[t] / volume[t - 20: t].mean(), rel=1e-12)
    assert (out["signal"] != HOLD).sum() >= 5


def test_sma_cross_future_bars_changed_past_signals_identical() -> None:
    bars = read_bars(FIXTURES / "aapl_daily_wiki.csv")
    cut = 400
    shuffled_future = pl.concat([bars.head(cut), bars.tail(bars.height - cut).with_columns(
        close=pl.col("close").shuffle(seed=5), volume=pl.col("volume").shuffle(seed=6))])
    assert sma_cross_signals(shuffled_future).head(cut).equals(sma_cross_signals(bars).head(cut))


def test_sma_cross_volume_equal_to_factor_times_mean_is_not_confirmed() -> None:
    # prices cross on the last bar; volume is exactly 1.5x the mean of the 2 bars before it
    bars = pl.DataFrame({"symbol": "X", "timeframe": "1m", "ts": [1, 2, 3, 4],
                         "close": [5.0, 4.0, 3.0, 6.0], "volume": [10.0, 10.0, 10.0, 15.0]})
    out = sma_cross_signals(bars, fast=2, slow=3, volume_window=2)
    assert out["signal"][-1] == HOLD
    assert "crossed above" in out["reason"][-1] and "is not above 1.5x" in out["reason"][-1]


def test_sma_cross_params_invalid_say_expected_and_found() -> None:
    with pytest.raises(ValueError, match="fast must be < slow, was fast=21, slow=9"):
        SmaCrossParams(fast=21, slow=9)
    with pytest.raises(ValueError, match="volume_factor must be finite and >= 0, was -1"):
        SmaCrossParams(volume_factor=-1)
