from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwise.pipeline.bars import BarAggregator, BarState
from tickwise.sources.simulator import NS, Simulator

TFS = ["1s", "1m", "5m"]


def run_stream(ticks: pl.DataFrame, batches: list[int], *, lateness_ms: int = 2000) -> tuple[pl.DataFrame, pl.DataFrame]:
    agg = BarAggregator(TFS, lateness_ms=lateness_ms)
    state = BarState()
    bars, rejected = [], []
    start = 0
    for size in batches:
        out = agg.process(state, ticks.slice(start, size))
        bars.append(out.bars)
        rejected.append(out.rejected)
        start += size
    out = agg.process(state, ticks.slice(start))
    bars += [out.bars, agg.drain(state)]
    rejected.append(out.rejected)
    return pl.concat(bars).sort("timeframe", "symbol", "ts"), pl.concat(rejected)


def batch_bars(ticks: pl.DataFrame) -> pl.DataFrame:
    """The reference: one polars aggregation over all ticks per interval."""
    from tickwise.timeframes import timeframe_ns

    out = []
    for tf in TFS:
        ns = timeframe_ns(tf)
        ts = pl.col("ts_event")
        out.append(
            ticks.sort("ts_event", "price")
            .group_by("symbol", (ts - ts % ns).alias("start"), maintain_order=True)
            .agg(
                pl.col("price").first().alias("open"),
                pl.col("price").max().alias("high"),
                pl.col("price").min().alias("low"),
                pl.col("price").last().alias("close"),
                pl.col("size").sum().alias("volume"),
                pl.len().cast(pl.Int64).alias("trades"),
                ((pl.col("price") * pl.col("size")).sum() / pl.col("size").sum()).alias("vwap"),
            )
            .with_columns(pl.lit(tf).alias("timeframe"), pl.col("start").cast(pl.Datetime("ns", "UTC")).alias("ts"))
        )
    return pl.concat(out).select("symbol", "timeframe", "ts", "open", "high", "low", "close", "volume", "trades",
                                 "vwap").sort("timeframe", "symbol", "ts")


def assert_same_bars(a: pl.DataFrame, b: pl.DataFrame) -> None:
    exact = ["symbol", "timeframe", "ts", "open", "high", "low", "close", "volume", "trades"]
    assert a.select(exact).equals(b.select(exact))
    # vwap is a ratio of float sums: equal up to the summation order
    np.testing.assert_allclose(a["vwap"].to_numpy(), b["vwap"].to_numpy(), rtol=1e-12)


def sim_ticks(seed: int, seconds: int = 130, rate: float = 400.0) -> pl.DataFrame:
    return Simulator(["AAPL", "MSFT", "NIFTY50"], tick_rate=rate, seed=seed, start_ns=1_700_000_000 * NS).generate(
        seconds * NS
    )


def test_bars_streaming_equals_batch_aggregation_on_simulated_ticks() -> None:
    ticks = sim_ticks(1)
    bars, rejected = run_stream(ticks, [1000] * 30)
    assert rejected.height == 0
    assert_same_bars(bars, batch_bars(ticks))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(1, 3000), min_size=1, max_size=12))
def test_bars_any_rebatching_gives_same_bars(seed: int, cuts: list[int]) -> None:
    ticks = sim_ticks(seed % 50, seconds=70, rate=200.0)
    whole, _ = run_stream(ticks, [])
    rebatched, _ = run_stream(ticks, cuts)
    assert_same_bars(whole, rebatched)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), jitter_ms=st.integers(0, 1900))
def test_bars_reordering_within_lateness_gives_same_bars(seed: int, jitter_ms: int) -> None:
    ticks = sim_ticks(seed % 50, seconds=70, rate=200.0)
    rng = np.random.default_rng(seed)
    # arrival order: event time plus a random delay smaller than the allowed lateness
    delay = rng.integers(0, jitter_ms * 1_000_000 + 1, ticks.height)
    shuffled = ticks.with_columns(pl.Series("arrival", ticks["ts_event"].to_numpy() + delay)).sort("arrival").drop("arrival")
    in_order, _ = run_stream(ticks, [500] * 10)
    out_of_order, rejected = run_stream(shuffled, [500] * 10)
    assert rejected.height == 0
    assert_same_bars(in_order, out_of_order)


@settings(max_examples=40, deadline=None)
@given(
    prices=st.lists(st.floats(0.01, 1e6, allow_nan=False), min_size=1, max_size=200),
    data=st.data(),
)
def test_bars_invariants_hold_and_volume_is_preserved(prices: list[float], data: st.DataObject) -> None:
    n = len(prices)
    ts = sorted(data.draw(st.lists(st.integers(0, 600 * NS), min_size=n, max_size=n)))
    sizes = data.draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n))
    ticks = pl.DataFrame({"symbol": ["X"] * n, "ts_event": ts, "price": prices, "size": [float(s) for s in sizes],
                          "id": [None] * n}, schema={"symbol": pl.Utf8, "ts_event": pl.Int64, "price": pl.Float64,
                                                     "size": pl.Float64, "id": pl.Utf8})
    bars, rejected = run_stream(ticks, [max(1, n // 3)] * 2, lateness_ms=0)
    assert rejected.height == 0
    assert (bars["low"] <= bars["open"]).all() and (bars["low"] <= bars["close"]).all()
    assert (bars["high"] >= bars["open"]).all() and (bars["high"] >= bars["close"]).all()
    for tf in TFS:
        per_tf = bars.filter(pl.col("timeframe") == tf)
        assert per_tf["volume"].sum() == float(sum(sizes))
        assert per_tf["trades"].sum() == n


def test_bars_late_tick_within_lateness_updates_its_bar() -> None:
    agg = BarAggregator(["1s"], lateness_ms=500)
    state = BarState()
    mk = lambda ts, price: pl.DataFrame({"symbol": ["A"], "ts_event": [ts], "price": [price], "size": [1.0],  # noqa: E731
                                         "id": [None]}, schema={"symbol": pl.Utf8, "ts_event": pl.Int64,
                                                                "price": pl.Float64, "size": pl.Float64, "id": pl.Utf8})
    agg.process(state, mk(100_000_000, 10.0))
    agg.process(state, mk(1_200_000_000, 11.0))  # watermark 0.7 s: window [0, 1 s) still open
    out = agg.process(state, mk(900_000_000, 50.0))  # late, but within the lateness
    assert out.rejected.height == 0
    closed = agg.process(state, mk(1_600_000_000, 12.0)).bars  # watermark 1.1 s closes [0, 1 s)
    assert closed.select("open", "high", "close", "trades").row(0) == (10.0, 50.0, 50.0, 2)


def test_bars_tick_later_than_lateness_is_rejected_as_late() -> None:
    agg = BarAggregator(["1s"], lateness_ms=100)
    state = BarState()
    ticks = pl.DataFrame({"symbol": ["A", "A"], "ts_event": [5 * NS, 1 * NS], "price": [1.0, 2.0], "size": [1.0, 1.0],
                          "id": [None, None]})
    out = agg.process(state, ticks)
    assert out.rejected["reason"].to_list() == ["late"]
    assert out.bars.height == 0


def test_bars_duplicate_ids_are_rejected_and_counted_once() -> None:
    ticks = sim_ticks(3, seconds=20)
    # a recent stretch delivered again is caught by id
    doubled = pl.concat([ticks.slice(0, 2000), ticks.slice(1900, 100), ticks.slice(2000)])
    once, _ = run_stream(ticks, [700] * 5)
    twice, rejected = run_stream(doubled, [700] * 5)
    assert rejected["reason"].to_list() == ["duplicate"] * 100
    assert_same_bars(once, twice)


def test_bars_whole_stream_delivered_twice_gives_same_bars() -> None:
    ticks = sim_ticks(5, seconds=20)
    once, _ = run_stream(ticks, [700] * 5)
    twice, rejected = run_stream(pl.concat([ticks, ticks]), [700] * 10)
    # older repeats are behind the watermark (late), recent ones are caught by id
    assert rejected.height == ticks.height
    assert set(rejected["reason"].to_list()) <= {"duplicate", "late"}
    assert_same_bars(once, twice)


def test_bars_quiet_symbol_closes_when_watermark_advances() -> None:
    agg = BarAggregator(["1s"], lateness_ms=0)
    state = BarState()
    ticks = pl.DataFrame({"symbol": ["A"], "ts_event": [NS // 2], "price": [1.0], "size": [1.0], "id": [None]},
                         schema={"symbol": pl.Utf8, "ts_event": pl.Int64, "price": pl.Float64, "size": pl.Float64,
                                 "id": pl.Utf8})
    assert agg.process(state, ticks).bars.height == 0
    out = agg.advance(state, 2 * NS)  # the clock moved on with no ticks
    assert out.bars["symbol"].to_list() == ["A"]


def test_bar_state_round_trips_through_bytes() -> None:
    agg = BarAggregator(TFS, lateness_ms=1000)
    state = BarState()
    agg.process(state, sim_ticks(4, seconds=5))
    restored = BarState.from_bytes(state.to_bytes())
    assert restored.max_ts == state.max_ts and restored.watermark == state.watermark
    assert restored.partials.sort("timeframe", "symbol", "start").equals(state.partials.sort("timeframe", "symbol", "start"))
    assert restored.seen_ids.height == state.seen_ids.height
