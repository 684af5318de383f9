from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tickwise.config import DEFAULT_SYMBOLS
from tickwise.sources.simulator import KNOWN, NS, SESSION_NS, Simulator, intraday_profile


def test_simulator_default_symbols_trade_near_realistic_levels_on_their_tick_grid() -> None:
    ticks = Simulator(DEFAULT_SYMBOLS, tick_rate=5000, seed=1, start_ns=0).generate(60 * NS)
    assert set(ticks["symbol"].unique()) == set(DEFAULT_SYMBOLS)
    for sym, group in ticks.group_by("symbol"):
        inst = KNOWN[sym[0]]
        prices = group["price"].to_numpy()
        assert np.all(np.abs(prices / inst.price - 1) < 0.05)
        steps = prices / inst.tick_size
        assert np.allclose(steps, np.round(steps), atol=1e-6)
    assert ticks["ts_event"].is_sorted() and (ticks["size"] > 0).all()
    assert ticks["id"].n_unique() == ticks.height


def test_simulator_same_seed_same_ticks_other_seed_other_ticks() -> None:
    make = lambda seed: Simulator(["AAPL", "SPY"], seed=seed, start_ns=0).generate(5 * NS)  # noqa: E731
    assert make(3).equals(make(3))
    assert not make(3).equals(make(4))


def test_simulator_tick_rate_follows_u_shaped_intraday_profile() -> None:
    sim = Simulator(["SPY"], tick_rate=20, seed=2, start_ns=0)
    minutes = [sim.generate(60 * NS).height for _ in range(int(SESSION_NS / (60 * NS)))]
    first, middle = np.mean(minutes[:20]), np.mean(minutes[180:210])
    assert first > 2 * middle  # busy at the open, quiet at midday
    assert intraday_profile(np.arange(0, SESSION_NS, NS)).mean() == pytest.approx(1.0, rel=1e-3)


def test_simulator_returns_have_the_configured_volatility_and_jumps() -> None:
    sim = Simulator(["TSLA"], tick_rate=1, seed=5, start_ns=0, jump_rate_per_day=2.0, jump_sigma=0.05)
    closes = [sim.generate(3600 * NS)["price"].tail(1).item() for _ in range(24 * 20)]
    r = np.diff(np.log(closes))
    hourly_sigma = KNOWN["TSLA"].annual_vol * np.sqrt(3600 / (365.25 * 86400))
    jump_var = 2.0 / 24 * 0.05**2
    assert 0.7 < r.std() / np.sqrt(hourly_sigma**2 + jump_var) < 1.3
    assert pl.Series(r).kurtosis() > 3.0  # jumps make tails fat
