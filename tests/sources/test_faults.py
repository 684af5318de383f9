from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from tickwise.exceptions import InputError
from tickwise.sources.faults import KINDS, Fault, FaultySimulator, match_faults
from tickwise.sources.simulator import NS, Simulator

SYMBOLS = ["AAPL", "MSFT", "SPY"]


def _run(kinds=KINDS, seconds: int = 90, per_minute: float = 30.0) -> tuple[FaultySimulator, pl.DataFrame, pl.DataFrame]:
    """The same simulator with and without faults, in 100 ms steps as `simulate_live` runs it."""
    faulty = FaultySimulator(Simulator(SYMBOLS, tick_rate=600, seed=5, start_ns=0), per_minute=per_minute,
                             kinds=kinds, warmup_s=10, seed=1)
    plain = Simulator(SYMBOLS, tick_rate=600, seed=5, start_ns=0)
    steps = range(seconds * 10)
    return (faulty, pl.concat([faulty.generate(NS // 10) for _ in steps]),
            pl.concat([plain.generate(NS // 10) for _ in steps]))


def _changed(faulted: pl.DataFrame, clean: pl.DataFrame) -> pl.DataFrame:
    """Ticks whose price or size the faults changed (the same ticks otherwise: same ids and times)."""
    assert faulted["id"].equals(clean["id"]) and faulted["ts_event"].equals(clean["ts_event"])
    both = faulted.with_columns(clean["price"].alias("clean_price"), clean["size"].alias("clean_size"))
    return both.filter((pl.col("price") != pl.col("clean_price")) | (pl.col("size") != pl.col("clean_size")))


def test_a_bad_print_moves_one_trade_1_to_3_percent_and_nothing_else() -> None:
    faulty, faulted, clean = _run(kinds=("bad_print",))
    assert len(faulty.faults) >= 20
    changed = _changed(faulted, clean)
    # every fault is one tick at its own time; rounding to the tick grid keeps the error near its draw
    assert changed.height == len(faulty.faults)
    for f, row in zip(faulty.faults, changed.iter_rows(named=True), strict=True):
        assert (f.symbol, f.start_ns, f.end_ns) == (row["symbol"], row["ts_event"], row["ts_event"])
        error = row["price"] / row["clean_price"] - 1
        assert 0.0099 < abs(error) < 0.0301 and np.sign(error) == np.sign(f.size)
        assert row["size"] == row["clean_size"]
    assert min(f.start_ns for f in faulty.faults) >= 10 * NS  # none in the warm-up


def test_a_block_trade_is_5_to_15_seconds_of_volume_in_one_trade() -> None:
    faulty, faulted, clean = _run(kinds=("block_trade",))
    changed = _changed(faulted, clean)
    assert changed.height == len(faulty.faults) >= 20
    per_second = clean.group_by("symbol", (pl.col("ts_event") // NS).alias("s")).agg(pl.col("size").sum())
    typical = dict(per_second.group_by("symbol").agg(pl.col("size").median()).iter_rows())
    for f, row in zip(faulty.faults, changed.iter_rows(named=True), strict=True):
        assert row["price"] == row["clean_price"]
        # against the symbol's median second (the profile and the log-normal sizes move it)
        assert 2.5 * typical[f.symbol] < row["size"] < 30 * typical[f.symbol]


def test_a_frozen_feed_repeats_the_last_price_then_the_market_goes_on() -> None:
    faulty, faulted, clean = _run(kinds=("frozen_feed",))
    assert len(faulty.faults) >= 10
    for f in faulty.faults:
        mine = (pl.col("symbol") == f.symbol)
        inside = faulted.filter(mine & pl.col("ts_event").is_between(f.start_ns, f.end_ns))
        before = clean.filter(mine & (pl.col("ts_event") < f.start_ns))
        assert 5.0 <= f.size <= 10.0 and f.end_ns - f.start_ns == int(f.size * NS)
        assert inside.height > 5 and inside["price"].n_unique() == 1
        assert inside["price"][0] == before["price"][-1]
        # after the freeze the symbol trades at the simulator's own prices again (to its next fault)
        following = [g.start_ns for g in faulty.faults if g.symbol == f.symbol and g.start_ns > f.end_ns]
        after = pl.col("ts_event").is_between(f.end_ns + 1, min([f.end_ns + 2 * NS, *following]) - 1)
        assert faulted.filter(mine & after)["price"].equals(clean.filter(mine & after)["price"])
    # outside the freezes nothing changed
    frozen = pl.lit(False)
    for f in faulty.faults:
        frozen = frozen | ((pl.col("symbol") == f.symbol) & pl.col("ts_event").is_between(f.start_ns, f.end_ns))
    assert _changed(faulted, clean).filter(~frozen).height == 0


def test_faults_on_one_symbol_do_not_overlap_and_keep_to_the_kinds_asked() -> None:
    faulty, _, _ = _run(per_minute=120.0)
    assert {f.kind for f in faulty.faults} == set(KINDS)
    for symbol in SYMBOLS:
        mine = [f for f in faulty.faults if f.symbol == symbol]
        assert all(a.end_ns < b.start_ns for a, b in itertools.pairwise(mine))


def test_the_warm_up_follows_the_clock_simulate_live_sets() -> None:
    faulty = FaultySimulator(Simulator(SYMBOLS, seed=5, start_ns=0), per_minute=600, warmup_s=2, seed=1)
    faulty.now_ns = 1_000 * NS  # as simulate_live does with the wall clock
    for _ in range(40):
        faulty.generate(NS // 10)
    assert faulty.faults and min(f.start_ns for f in faulty.faults) >= 1_002 * NS


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"per_minute": 0}, "faults per minute must be a positive number, was 0"),
    ({"per_minute": float("nan")}, "faults per minute must be a positive number, was nan"),
    ({"per_minute": 5, "kinds": ("typo",)}, "fault kinds must be among bad_print, block_trade, frozen_feed, was typo"),
])
def test_bad_settings_are_input_errors(kwargs, message) -> None:
    with pytest.raises(InputError, match=message):
        FaultySimulator(Simulator(SYMBOLS, seed=5, start_ns=0), **kwargs)


def test_match_faults_counts_a_bar_touched_or_the_next_and_the_other_bars_in_the_span() -> None:
    faults = [Fault("A", "frozen_feed", 10 * NS + 5, 13 * NS, 3.0), Fault("B", "bad_print", 20 * NS, 20 * NS, 0.02)]
    flagged = pl.DataFrame({
        "symbol": ["A", "A", "B", "B", "A", "A", "B"],
        "ts": [14 * NS, 12 * NS, 22 * NS, 5 * NS, 40 * NS, 41 * NS, 20 * NS],
        "detector": ["x", "x", "x", "x", "x", "y", "y"],
    })
    rows = {r["detector"]: r for r in match_faults(faults, flagged, timeframe_ns=NS, since_ns=8 * NS)}
    # x: the freeze flagged on its bar 12 and on 14 (the bar after its last); the bad print's bar
    # after is 21, so 22 is another bar; 5 is before the span faults start in; 40 another
    assert rows["x"]["flagged"] == 1 and rows["x"]["by_kind"] == {"frozen_feed": "1/1", "bad_print": "0/1"}
    assert rows["x"]["other_bars_flagged"] == 2
    assert rows["y"]["flagged"] == 1 and rows["y"]["other_bars_flagged"] == 1


def test_a_bad_print_stays_on_the_tick_grid_as_the_simulator_prints_it() -> None:
    _, faulted, clean = _run(kinds=("bad_print",), seconds=40)
    changed = _changed(faulted, clean)
    assert changed.height > 0
    for row in changed.iter_rows(named=True):
        assert row["price"] == round(row["price"], 2)  # the default symbols trade in cents
