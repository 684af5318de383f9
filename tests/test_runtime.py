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
