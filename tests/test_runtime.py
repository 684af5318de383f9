from __future__ import annotations

from pathlib import Path

import pytest

from tickwise.bus.memory import MemoryBus
from tickwise.config import load_settings
from tickwise.exceptions import BackendError
from tickwise.runtime import Runtime
from tickwise.store.duckdb import DuckDBWarehouse


class BrokenWarehouse(DuckDBWarehouse):
    """Fails every commit that carries bars, as a full disk would."""

    def commit(self, writes, checkpoints=()):  # type: ignore[no-untyped-def]
        if "bars" in writes:
            raise BackendError("warehouse commit failed: disk full")
        super().commit(writes, checkpoints)


def _up_with_api(tmp_path: Path) -> Runtime:
    """What `tickwise up` runs (the simulator, 1s bars, the stages with zscore anomalies), with
    its API on a free port and no dashboard."""
    settings = load_settings(data_dir=tmp_path, timeframes="1s", tick_rate=500.0, api_port=0,
                             anomaly_detectors="zscore")
    rt = Runtime(settings, lake=False)
    rt.start_services(dashboard=False)
    assert rt.services is not None
    return rt


def test_runtime_stops_and_reports_when_the_worker_dies(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, timeframes="1s", tick_rate=500.0)
    rt = Runtime(settings, bus=MemoryBus(partitions=1), warehouse=BrokenWarehouse(str(tmp_path / "w.duckdb")),
                 stages=False, lake=False)
    with pytest.raises(BackendError, match="pipeline worker stopped"):
        rt.run("sim", duration_s=30, status=False)
    rt.close()


def test_runtime_replays_a_file_to_the_end_and_returns(tmp_path: Path) -> None:
    from tests.conftest import FIXTURES

    settings = load_settings(data_dir=tmp_path, timeframes="1d")
    rt = Runtime(settings, stages=False, lake=False)
    summary = rt.run(str(FIXTURES / "ibm.us.txt"), status=False)
    rt.close()
    assert summary.ticks_published == summary.ticks_processed == 400
    assert summary.bars == 100 and summary.deadletters == 0


def test_worker_stops_and_exits_nonzero_when_one_of_its_threads_dies(tmp_path: Path, monkeypatch) -> None:
    """`tickwise worker` must not go on half-working: a dead-letter sink (or stage) thread that
    raises stops the whole worker, which says why on stderr and exits 1, without a traceback."""
    from typer.testing import CliRunner

    from tickwise import app as composition
    from tickwise.cli import app
    from tickwise.pipeline import stage_runner

    def broken_run(self, stop):  # type: ignore[no-untyped-def]
        raise RuntimeError("dead-letter table is gone")

    monkeypatch.setattr(stage_runner.DeadLetterSink, "run", broken_run)
    monkeypatch.setattr(composition, "build_bus", lambda settings: MemoryBus(partitions=2))
    monkeypatch.setenv("TICKWISE_BUS", "redis://127.0.0.1:1/0")  # a shared bus by name; build_bus is replaced
    monkeypatch.setenv("TICKWISE_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["worker", "--name", "w1"])
    assert result.exit_code == 1, result.output
    assert "worker w1 stopped because deadletter-sink stopped: RuntimeError: dead-letter table is gone" in result.output
    assert "Traceback" not in result.output


def test_up_reports_a_dead_stage_in_health_and_ends_with_an_error(tmp_path: Path, monkeypatch) -> None:
    """`tickwise up` goes on when an analytics stage thread dies (the bars still flow), but not
    silently: /health answers degraded with the stage and its error while it runs, and the run
    ends with an error naming it."""
    import threading
    import time

    import httpx

    from tickwise.pipeline.stage_runner import StageRunner

    step = StageRunner.step

    def broken(self, timeout_s=0.05):  # type: ignore[no-untyped-def]
        # a stage's own errors skip its bars (logged); what ends its thread is the bus or the warehouse
        if self.stage.name == "anomaly" and self.bars_seen:
            raise BackendError("bus read failed: connection reset")
        return step(self, timeout_s)

    monkeypatch.setattr(StageRunner, "step", broken)
    rt = _up_with_api(tmp_path)
    url = rt.services.api_url + "/api/v1/health"
    seen: list[tuple[int, dict]] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            r = httpx.get(url, timeout=5)
            seen.append((r.status_code, r.json()))
            time.sleep(0.2)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        with pytest.raises(BackendError, match=r"part of the pipeline stopped or failed.*stage-anomaly stopped: "
                                               r"BackendError: bus read failed: connection reset"):
            rt.run("sim", duration_s=6, status=False)
    finally:
        done.set()
        poller.join()
        rt.close()
    assert seen[0][1]["status"] == "ok"
    degraded = [body for code, body in seen if body["status"] == "degraded"]
    assert degraded and all(code == 200 for code, body in seen), seen[-1]
    assert "stage-anomaly stopped: BackendError: bus read failed: connection reset" in degraded[-1]["detail"]
    assert rt.worker.stats.bars > 0  # the bars went on meanwhile


def test_up_reports_a_stage_that_fails_on_every_batch(tmp_path: Path, monkeypatch) -> None:
    """A stage whose every batch raises keeps its thread (each batch is skipped and logged), so
    nothing "stops"; /health still says it is failing, and the run ends with an error."""
    import httpx

    from tickwise.anomaly.stage import AnomalyStage

    def broken(self, bars):  # type: ignore[no-untyped-def]
        raise RuntimeError("anomaly model file is corrupt")

    monkeypatch.setattr(AnomalyStage, "on_bars", broken)
    rt = _up_with_api(tmp_path)
    try:
        with pytest.raises(BackendError, match=r"stage anomaly failed on \d+ batch\(es\) of bars, which it skipped "
                                               r"\(last: RuntimeError: anomaly model file is corrupt\)"):
            rt.run("sim", duration_s=4, status=False)
        body = httpx.get(rt.services.api_url + "/api/v1/health", timeout=5).json()
    finally:
        rt.close()
    assert body["status"] == "degraded"
    assert "stage-anomaly failing: its last" in body["detail"]
    assert "RuntimeError: anomaly model file is corrupt" in body["detail"]
    assert rt.worker.stats.bars > 0


def test_up_with_faults_ends_with_what_the_classifier_flagged_of_them(tmp_path: Path) -> None:
    """`tickwise up --faults`: labelled faults in the simulator's ticks, matched at the end against
    the anomalies stored for the 1s bars (the classifier flags from a symbol's 21st bar)."""
    from tickwise.anomaly.learned import Training, prepare
    from tickwise.runtime import faulty_simulator

    prepare([Training(market=True), Training()], lambda _: None)  # as `tickwise prepare` (cached for the session)
    settings = load_settings(data_dir=tmp_path, timeframes="1s", tick_rate=2000.0, anomaly_detectors="classifier",
                             symbols="AAPL,MSFT,SPY,GOOG")
    faulty = faulty_simulator(settings, "sim", 60.0)
    assert faulty is not None
    faulty.warmup_ns = 22 * 10**9  # the bands' 20 bars, then faults
    rt = Runtime(settings, lake=False)
    try:
        summary = rt.run("sim", duration_s=40, faults=faulty, status=False)
    finally:
        rt.close()
    assert summary.faults is not None and summary.faults["timeframe"] == "1s"
    assert summary.faults["faults"] == len(faulty.faults) >= 5
    (row,) = summary.faults["detectors"]
    assert row["detector"] == "classifier" and row["faults"] == len(faulty.faults)
    # what it flagged, counted by kind, adds up; block trades of 5-15 seconds' volume are plain to it
    counts = [tuple(map(int, v.split("/"))) for v in row["by_kind"].values()]
    assert sum(c[0] for c in counts) == row["flagged"] and sum(c[1] for c in counts) == len(faulty.faults)
    blocks = row["by_kind"].get("block_trade")
    if blocks is not None:
        found, of = map(int, blocks.split("/"))
        assert found >= of / 2, row
    lines = summary.fault_lines()
    assert lines[0].startswith(f"faults injected into the simulator's ticks: {len(faulty.faults)}, matched on 1s bars")
    assert lines[1].startswith(f"  classifier: flagged {row['flagged']} of {len(faulty.faults)}")
