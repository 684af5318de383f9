"""The live stage: forecasts per symbol per bar, cheap updates, drift refits, registry, warehouse."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tickwise.exceptions import ConfigError
from tickwise.forecast import Arima
from tickwise.forecast.stage import ForecastConfig, ForecastStage, make_stage

MINUTE = 60_000_000_000
T0 = 1_700_000_000 * 1_000_000_000 // MINUTE * MINUTE

def frame(symbol: str, bars: np.ndarray, start: int) -> pl.DataFrame:
    n = bars.shape[0]
    return pl.DataFrame({
        "symbol": [symbol] * n, "timeframe": ["1m"] * n,
        "ts": pl.Series([T0 + (start + i) * MINUTE for i in range(n)]).cast(pl.Datetime("ns", "UTC")),
        "open": bars[:, 0], "high": bars[:, 1], "low": bars[:, 2], "close": bars[:, 3], "volume": bars[:, 4],
        "trades": [1] * n, "vwap": bars[:, 3],
    })


def stream(stage: ForecastStage, series: dict[str, np.ndarray], *, start: int = 0) -> pl.DataFrame:
    """Feed one bar of every symbol per call, as the runner does live; return every forecast row."""
    out = []
    n = min(len(v) for v in series.values())
    for i in range(n):
        batch = pl.concat([frame(s, v[i:i + 1], start + i) for s, v in series.items()])
        result = stage.on_bars(batch)
        if "forecasts" in result.tables:
            out.append(result.tables["forecasts"])
    return pl.concat(out) if out else pl.DataFrame()


def test_stage_forecasts_each_symbol_next_bar_coherently(aapl_hourly, msft):
    stage = ForecastStage(ForecastConfig(min_bars=60, window=120, refit_every=1000, drift_window=1000, fit_budget_s=60.0))
    rows = stream(stage, {"AAPL": aapl_hourly[-90:], "MSFT": msft[-90:]})
    assert rows.height == 2 * 31
    assert set(rows["model"]) == {"arima"} and set(rows["version"]) == {"default"}
    last = rows.filter(pl.col("symbol") == "AAPL")["ts"][-1]
    assert last == pl.Series([T0 + 90 * MINUTE]).cast(pl.Datetime("ns", "UTC"))[0]  # the bar after the last one
    ok = rows.select(
        coherent=(pl.col("low") <= pl.min_horizontal("open", "close")) & (pl.max_horizontal("open", "close") <= pl.col("high")),
        nested=(pl.col("lo_95") <= pl.col("lo_80")) & (pl.col("lo_80") < pl.col("close")) & (pl.col("close") < pl.col("hi_80")),
    )
    assert ok["coherent"].all() and ok["nested"].all()
    assert stage.fits == 2  # one fit per symbol; every later bar took the cheap update


def test_stage_cheap_update_equals_offline_arima_filtering(msft):
    bars = msft[-100:]
    stage = ForecastStage(ForecastConfig(min_bars=60, window=60, refit_every=1000, drift_window=1000))
    rows = stream(stage, {"MSFT": bars})
    offline = Arima().fit(bars[:60])
    for bar in bars[60:]:
        offline.update(bar)
    f = offline.predict(1)
    assert rows["close"][-1] == pytest.approx(f.mean[0], rel=1e-12)
    assert rows["hi_95"][-1] == pytest.approx(f.hi[95][0], rel=1e-12)


def test_stage_perturbed_future_bars_leave_earlier_forecasts_unchanged(msft):
    bars = msft[-110:].copy()
    cfg = ForecastConfig(min_bars=60, window=80, refit_every=20)
    base = stream(ForecastStage(cfg), {"MSFT": bars})
    shaken = bars.copy()
    shaken[95:, :4] *= np.random.default_rng(0).uniform(0.8, 1.2, size=(15, 1))
    shaken[95:, 1] = shaken[95:, :4].max(axis=1)
    shaken[95:, 2] = shaken[95:, :4].min(axis=1)
    moved = stream(ForecastStage(cfg), {"MSFT": shaken})
    cut = pl.Series([T0 + 95 * MINUTE]).cast(pl.Datetime("ns", "UTC"))[0]
    cols = ["ts", "open", "high", "low", "close", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert base.filter(pl.col("ts") <= cut).select(cols).equals(moved.filter(pl.col("ts") <= cut).select(cols))
    assert not base.filter(pl.col("ts") > cut).select(cols).equals(moved.filter(pl.col("ts") > cut).select(cols))


def test_stage_refits_early_when_errors_drift(sp500):
    calm = sp500[1500:1700]  # 2005: quiet markets
    wild = sp500[2440:2480]  # autumn 2008
    wild = wild * (calm[-1, 3] / wild[0, 3])
    cfg = ForecastConfig(model="naive", min_bars=60, window=150, refit_every=10_000, drift_window=20)
    drifting = ForecastStage(cfg)
    stream(drifting, {"SPX": np.vstack([calm, wild])})
    steady = ForecastStage(cfg)
    stream(steady, {"SPX": sp500[1500:1740]})
    assert drifting.drift_refits >= 1
    assert steady.drift_refits == 0


def test_stage_redelivered_bar_gives_the_same_rows(msft):
    stage = ForecastStage(ForecastConfig(model="drift", min_bars=20, window=40))
    stream(stage, {"MSFT": msft[-30:]})
    again = stage.on_bars(frame("MSFT", msft[-1:], 29))
    first_time = stage.tracks[("MSFT", "1m")].last_rows
    assert again.tables["forecasts"].height == 1
    assert again.tables["forecasts"]["close"][0] == first_time[0]["close"]
    assert stage.tracks[("MSFT", "1m")].since_fit == 10  # the repeat did not advance the model


def test_stage_emits_signal_rows_and_json_payloads(msft):
    from tickwise.codec import decode_json

    stage = ForecastStage(ForecastConfig(model="drift", min_bars=20, window=40, k=0.0))
    out = stage.on_bars(frame("MSFT", msft[-25:], 0))
    sig = out.tables["signals"]
    assert set(sig["rule"]) == {"forecast.drift"}
    assert set(sig["signal"]) <= {"BUY", "SELL"}  # k=0: any predicted move is acted on
    strict = ForecastStage(ForecastConfig(model="drift", min_bars=20, window=40, k=50.0))
    assert set(strict.on_bars(frame("MSFT", msft[-25:], 0)).tables["signals"]["signal"]) == {"HOLD"}
    published = decode_json(out.topics["forecasts"][0])
    assert len(published) == 6 and published[-1]["close"] == out.tables["forecasts"]["close"][-1]
    assert published[0]["ts"].endswith("Z") and published[0]["ts_ns"] == T0 + 20 * MINUTE
    assert [r["signal"] for r in decode_json(out.topics["signals"][0])] == sig["signal"].to_list()


def test_stage_rows_commit_to_the_warehouse(settings, msft):
    from tickwise.app import build_warehouse
    from tickwise.store.base import TABLES

    stage = ForecastStage(ForecastConfig(model="naive", min_bars=20, window=40))
    out = stage.on_bars(frame("MSFT", msft[-30:], 0))
    warehouse = build_warehouse(settings)
    try:
        warehouse.commit({name: df.to_arrow() for name, df in out.tables.items() if name in TABLES})
        warehouse.commit({name: df.to_arrow() for name, df in out.tables.items() if name in TABLES})  # idempotent
        stored = pl.from_arrow(warehouse.read("forecasts", where={"symbol": "MSFT"}))
        signals = pl.from_arrow(warehouse.read("signals", where={"symbol": "MSFT"}))
    finally:
        warehouse.close()
    assert stored.height == 11
    assert stored["close"].to_list() == out.tables["forecasts"]["close"].to_list()
    assert signals.height == 11 and set(signals["rule"]) == {"forecast.naive"}


def test_make_stage_uses_the_promoted_registry_version(settings):
    from tickwise.app import build_warehouse
    from tickwise.forecast.registry import ModelRegistry

    warehouse = build_warehouse(settings)
    try:
        reg = ModelRegistry(warehouse)
        reg.register("arima", params={"order": [1, 1, 0]})
        reg.register("arima", params={"order": [0, 1, 1]})
        reg.promote("arima", 2)
        running = make_stage(settings, warehouse=warehouse)  # the running warehouse, as tickwise up passes it
    finally:
        warehouse.close()
    stage = make_stage(settings)
    assert stage.config.version == "2" and stage.config.params["order"] == [0, 1, 1]
    assert running.config == stage.config and running.history is not None and stage.history is None


def test_make_stage_lstm_without_promoted_version_says_how_to_get_one(settings):
    with pytest.raises(ConfigError, match="tickwise models promote lstm"):
        make_stage(settings.model_copy(update={"forecast_model": "lstm"}))


def test_stage_with_history_forecasts_from_the_first_bar_after_a_restart(tmp_path, msft):
    """The stored window stands in for the bars a restarted stage has not seen: the first new
    bar is forecast at once, by a fit on the last ``window`` bars up to it, where a cold stage
    waits for ``min_bars`` bars; after `revoked` the series starts again from stored bars."""
    from tickwise.pipeline.stages import warehouse_history
    from tickwise.store.duckdb import DuckDBWarehouse

    bars = msft[-160:]
    warehouse = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    try:
        copy = bars * np.array([2.0, 2.0, 2.0, 2.0, 1.0])  # a second series, read in the same query
        warehouse.commit({"bars": pl.concat([frame("MSFT", bars[:130], 0), frame("COPY", copy[:130], 0)]).to_arrow()})
        config = ForecastConfig(min_bars=60, window=120, refit_every=1000, drift_window=1000, fit_budget_s=60.0)
        warm = ForecastStage(config, history=warehouse_history(warehouse))
        both = stream(warm, {"MSFT": bars[130:], "COPY": copy[130:]}, start=130)
        rows = both.filter(pl.col("symbol") == "MSFT")
        cold = stream(ForecastStage(config), {"MSFT": bars[130:]}, start=130)
        assert rows.height == 30 and both.height == 60 and cold.height == 0
        f = Arima().fit(bars[11:131]).predict(1)  # the 120 bars up to the first new one
        assert rows["close"][0] == pytest.approx(float(f.mean[0]), rel=1e-9)
        g = Arima().fit(copy[11:131]).predict(1)
        assert both.filter(pl.col("symbol") == "COPY")["close"][0] == pytest.approx(float(g.mean[0]), rel=1e-9)
        warm.revoked("1m")
        warehouse.commit({"bars": frame("MSFT", bars[130:150], 130).to_arrow()})  # another worker's bars
        again = stream(warm, {"MSFT": bars[150:]}, start=150)
    finally:
        warehouse.close()
    assert again.height == 10
    assert again["close"][0] == pytest.approx(float(Arima().fit(bars[31:151]).predict(1).mean[0]), rel=1e-9)
