"""`tickwise up` in one process: source → bus → pipeline → warehouse, plus stages and serving.

Threads: one source, one pipeline worker, the dead-letter sink, one runner per analytics
stage, the lake archiver, and (optionally) the API and dashboard. Shutdown goes in data
order: the source stops, the bus drains into the worker, the worker closes every open
window and commits, then the downstream stages drain.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import polars as pl

from tickwise import app
from tickwise.bus import SIGNALS, TICKS, Bus, bars_topic
from tickwise.config import Settings
from tickwise.exceptions import BackendError, InputError
from tickwise.pipeline.ingest import TickPublisher
from tickwise.pipeline.stage_runner import DeadLetterSink, StageRunner
from tickwise.pipeline.worker import GROUP, PipelineWorker
from tickwise.sources.faults import KINDS as FAULT_KINDS
from tickwise.sources.faults import FaultySimulator, match_faults
from tickwise.sources.simulator import Simulator
from tickwise.sources.socket_feed import FeedClient
from tickwise.sources.streams import file_ticks, replay, simulate_live
from tickwise.store import Warehouse
from tickwise.timeframes import timeframe_ns

log = logging.getLogger(__name__)


@dataclass
class Summary:
    ticks_published: int
    ticks_processed: int
    bars: int
    deadletters: int
    seconds: float
    #: rows the analytics stages wrote per table (signals, forecasts, anomalies), in stage order
    outputs: dict[str, int] = field(default_factory=dict)
    #: with injected faults (`tickwise up --faults`): how many, on which timeframe's bars they
    #: were matched, and per detector what it flagged (`tickwise.sources.faults.match_faults`;
    #: None without an anomaly stage)
    faults: dict[str, object] | None = None

    def results(self) -> str:
        """The stages' rows as words, e.g. ``signals 40, forecasts 20, anomalies 0`` (empty without stages).

        Examples
        --------
        >>> Summary(0, 0, 0, 0, 0.0, {"signals": 1200, "anomalies": 0}).results()
        'signals 1,200, anomalies 0'
        """
        return ", ".join(f"{name} {n:,}" for name, n in self.outputs.items())

    def fault_lines(self) -> list[str]:
        """What the detectors made of the injected faults, one line per detector.

        Examples
        --------
        >>> s = Summary(0, 0, 0, 0, 0.0, faults={"timeframe": "1s", "faults": 3, "detectors": [
        ...     {"detector": "classifier", "faults": 3, "flagged": 2, "other_bars_flagged": 1,
        ...      "by_kind": {"bad_print": "1/1", "frozen_feed": "1/2"}}]})
        >>> for line in s.fault_lines():
        ...     print(line)
        faults injected into the simulator's ticks: 3, matched on 1s bars (a bar they touch or the next)
          classifier: flagged 2 of 3 (bad_print 1/1, frozen_feed 1/2); 1 other bar flagged
        """
        if self.faults is None:
            return []
        lines = [f"faults injected into the simulator's ticks: {self.faults['faults']}, matched on "
                 f"{self.faults['timeframe']} bars (a bar they touch or the next)"]
        detectors = cast(list[dict[str, Any]] | None, self.faults["detectors"])
        if detectors is None:
            lines.append("  no anomaly stage ran (a run without the analytics stages)")
        elif not detectors:
            lines.append("  no detector flagged a bar after the warm-up")
        for d in detectors or []:
            kinds = ", ".join(f"{k} {v}" for k, v in d["by_kind"].items())
            other = d["other_bars_flagged"]
            lines.append(f"  {d['detector']}: flagged {d['flagged']} of {d['faults']}" + (f" ({kinds})" if kinds else "")
                         + f"; {other} other bar{'' if other == 1 else 's'} flagged")
        return lines


def make_source(settings: Settings, source: str, stop: threading.Event, *, speed: float = 0.0,
                symbol: str | None = None, timeframe: str | None = None,
                faults: FaultySimulator | None = None) -> Iterator[pl.DataFrame] | str:
    """A frame iterator for ``sim`` or a file; a ``tcp://`` URL is returned as is. ``faults``:
    the simulator with labelled faults to run instead of a plain one (`faulty_simulator`)."""
    if source == "sim":
        return simulate_live(faults or _simulator(settings), stop)  # type: ignore[arg-type]
    if source.startswith("tcp://"):
        return source
    path = Path(source)
    if not path.exists():
        raise InputError(f"source must be sim, tcp://HOST:PORT or an existing file, was {source!r}")
    return replay(file_ticks(path, symbol=symbol, timeframe=timeframe, tz=settings.input_tz), stop, speed=speed)


def faulty_simulator(settings: Settings, source: str, per_minute: float,
                     kinds: Sequence[str] = FAULT_KINDS) -> FaultySimulator | None:
    """The settings' simulator with ``per_minute`` labelled faults of ``kinds`` (None for 0); one
    line for a source that is not the simulator or a rate out of range.

    Examples
    --------
    >>> faulty_simulator(Settings(), "sim", 0) is None, faulty_simulator(Settings(), "sim", 12).per_minute
    (True, 12.0)
    >>> faulty_simulator(Settings(), "sim", 1e4)
    Traceback (most recent call last):
    tickwise.exceptions.InputError: --faults must be 0 (none) or up to 600 faults per minute, was 10000
    """
    if per_minute == 0:
        return None
    if source != "sim":
        raise InputError(f"--faults injects faults into the simulator's ticks: it needs --source sim, was {source!r}")
    if not 0 < per_minute <= 600:
        raise InputError(f"--faults must be 0 (none) or up to 600 faults per minute, was {per_minute:g}")
    return FaultySimulator(_simulator(settings), per_minute=per_minute, kinds=kinds, seed=settings.seed)


def _simulator(settings: Settings) -> Simulator:
    """The simulator the settings describe (symbols, tick rate, seed)."""
    return Simulator(settings.symbols, tick_rate=settings.tick_rate, seed=settings.seed)


class Supervisor:
    """Starts daemon threads whose failures are logged, kept in `failures` and, given a
    ``stop`` event, set it.

    With ``stop`` a process does not go on half-working: it winds down (and exits non-zero:
    its caller checks `failures`) instead of going on without that part, e.g. a worker whose
    anomaly stage died while its bars kept flowing; a supervisor restarts it, and the bus
    redelivers what was not acknowledged. Without ``stop`` the others finish (`tickwise up`,
    whose /health then says which part stopped and whose run ends with an error).

    Examples
    --------
    >>> stop = threading.Event()
    >>> sup = Supervisor(stop)
    >>> sup.start("stage-x", lambda: 1 / 0).join()
    >>> stop.is_set(), sup.failures
    (True, ['stage-x stopped: ZeroDivisionError: division by zero'])
    """

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop
        self.failures: list[str] = []

    def start(self, name: str, target: Callable[..., object], *args: object, **kwargs: object) -> threading.Thread:
        def guarded() -> None:
            try:
                target(*args, **kwargs)
            except Exception as exc:
                message = f"{name} stopped: {type(exc).__name__}: {exc}"
                then = "; stopping the process" if self.stop is not None else ""
                log.error("%s%s (run with -v for the traceback)", message, then)
                log.debug("%s traceback", name, exc_info=True)
                self.failures.append(message)
                if self.stop is not None:
                    self.stop.set()

        t = threading.Thread(target=guarded, name=name, daemon=True)
        t.start()
        return t


class Runtime:
    """Everything `tickwise up` runs, wired from settings."""

    def __init__(self, settings: Settings, *, bus: Bus | None = None, warehouse: Warehouse | None = None,
                 stages: bool = True, lake: bool = True) -> None:
        self.settings = settings
        self.bus = bus or app.build_bus(settings)
        self.warehouse = warehouse or app.build_warehouse(settings)
        self.publisher = TickPublisher(self.bus, source="up")
        self.worker = PipelineWorker(
            self.bus, self.warehouse, timeframes=settings.timeframes, lateness_ms=settings.lateness_ms,
            commit_interval_ms=settings.commit_interval_ms, idle_close_ms=settings.idle_close_ms,
            name="up-worker",
        )
        self.sink = DeadLetterSink(self.bus, self.warehouse, name="up-sink")
        self.stage_runners = [
            StageRunner(self.bus, self.warehouse, s, name="up", commit_interval_ms=settings.commit_interval_ms)
            for s in (app.build_stages(settings, self.warehouse) if stages else [])
        ]
        self.archiver = self._archiver() if lake else None
        self.services = None
        self.worker_thread: threading.Thread | None = None
        #: starts the threads of a run; its failures show in /health and end the run with an error
        self.supervisor = Supervisor()

    def _archiver(self) -> object | None:
        try:
            from tickwise.lake.archiver import LakeArchiver
        except ModuleNotFoundError:
            return None
        return LakeArchiver(self.bus, app.build_lake(self.settings).writer(),
                            timeframes=tuple(self.settings.timeframes))

    def start_services(self, *, dashboard: bool) -> None:
        try:
            runtime = importlib.import_module("tickwise.serve.runtime")
        except ModuleNotFoundError:
            log.warning("serving is not available in this build")
            return
        self.services = runtime.start_services(self.settings, warehouse=self.warehouse, bus=self.bus,
                                               dashboard=dashboard, problems=self.stopped_parts)

    def run(self, source: str, *, duration_s: float | None = None, speed: float = 0.0,
            symbol: str | None = None, timeframe: str | None = None, status: bool = True,
            stop: threading.Event | None = None, faults: FaultySimulator | None = None) -> Summary:
        """Run until ``duration_s`` (or the end of a file, or ``stop``), drain, and sum up.
        ``faults``: a simulator with labelled faults (`faulty_simulator`) run instead of a plain
        one; its faults are matched at the end against the anomalies flagged on the smallest
        timeframe's bars."""
        stop_source = stop or threading.Event()
        stop_worker, stop_down, stop_lake = threading.Event(), threading.Event(), threading.Event()
        started = time.monotonic()
        frames = make_source(self.settings, source, stop_source, speed=speed, symbol=symbol, timeframe=timeframe,
                             faults=faults)
        stage_threads = [self.supervisor.start(f"stage-{r.stage.name}", r.run, stop_down) for r in self.stage_runners]
        threads_down = [self.supervisor.start("deadletter-sink", self.sink.run, stop_down), *stage_threads]
        lake_thread = None
        if self.archiver is not None:
            lake_thread = self.supervisor.start("lake-archiver", self.archiver.run, stop_lake)  # type: ignore[attr-defined]
        worker = self.supervisor.start("pipeline-worker", self.worker.run, stop_worker, drain=True)
        self.worker_thread = worker
        finished = threading.Event()
        if isinstance(frames, str):
            client = FeedClient(frames, lambda ticks, dead: (self.publisher.publish(ticks), self.publisher.reject(dead)))
            src = self.supervisor.start("source", client.run, stop_source)
        else:
            def pump() -> None:
                for frame in frames:
                    self.publisher.publish(frame)
                finished.set()

            src = self.supervisor.start("source", pump)
        last_print, last_ticks = time.monotonic(), 0
        try:
            while True:
                time.sleep(0.2)
                elapsed = time.monotonic() - started
                if duration_s is not None and elapsed >= duration_s:
                    break
                if finished.is_set() and self.bus.lag(TICKS, GROUP) == 0:
                    break
                if not worker.is_alive():
                    break  # it logged its error; stop the rest and report
                if status and time.monotonic() - last_print >= 1.0:
                    now = time.monotonic()
                    rate = (self.worker.stats.ticks - last_ticks) / (now - last_print)
                    last_print, last_ticks = now, self.worker.stats.ticks
                    self._status(rate)
        except KeyboardInterrupt:
            pass
        stop_source.set()
        src.join(timeout=10)
        if worker.is_alive():  # a dead worker drains nothing
            self._wait_drained(TICKS, GROUP, timeout_s=60)
        stop_worker.set()
        worker.join(timeout=60)
        for tf in self.settings.timeframes:
            for r, t in zip(self.stage_runners, stage_threads, strict=True):
                if tf in r.stage.timeframes and t.is_alive():  # a dead stage drains nothing
                    self._wait_drained(bars_topic(tf), r.stage.name, timeout_s=30)
        stop_down.set()
        for t in threads_down:
            t.join(timeout=60)
        if lake_thread is not None:
            # the archiver reads what the stages published last, then stops
            for topic in (TICKS, *[bars_topic(tf) for tf in self.settings.timeframes], SIGNALS):
                self._wait_drained(topic, "lake", timeout_s=30)
            stop_lake.set()
            lake_thread.join(timeout=60)
        if status:
            self._status(0.0, final=True)
        if self.worker_failed:
            raise BackendError("the pipeline worker stopped with an error (logged above); bars up to its "
                               "last commit are stored")
        skipped = [f"stage {r.stage.name} failed on {r.errors} batch(es) of bars, which it skipped (last: {r.last_error})"
                   for r in self.stage_runners if r.errors]
        if self.supervisor.failures or skipped:
            raise BackendError(f"part of the pipeline stopped or failed during the run "
                               f"({'; '.join([*self.supervisor.failures, *skipped])}); the rest ran to the end")
        outputs: dict[str, int] = {}
        for r in self.stage_runners:
            for name, n in r.rows_written.items():
                outputs[name] = outputs.get(name, 0) + n
        return Summary(self.publisher.published, self.worker.stats.ticks, self.worker.stats.bars,
                       self.worker.stats.deadletters + self.publisher.rejected, time.monotonic() - started, outputs,
                       None if faults is None else self._match(faults))

    def _match(self, faulty: FaultySimulator) -> dict[str, object]:
        """The faults injected in this run against the anomalies stored for the smallest timeframe."""
        tf = min(self.settings.timeframes, key=timeframe_ns)
        since = faulty.start_ns + faulty.warmup_ns
        if not any(r.stage.name == "anomaly" for r in self.stage_runners):
            return {"timeframe": tf, "faults": len(faulty.faults), "detectors": None}  # no anomaly stage ran
        flagged = pl.DataFrame(self.warehouse.read("anomalies", where={"timeframe": tf}, start_ts=since - timeframe_ns(tf)))
        return {"timeframe": tf, "faults": len(faulty.faults),
                "detectors": match_faults(faulty.faults, flagged, timeframe_ns=timeframe_ns(tf), since_ns=since)}

    def stopped_parts(self) -> list[str]:
        """The parts of this run that stopped with an error, and the stages whose latest batch
        of bars failed (skipped, logged; for /health)."""
        failing = [f"stage-{r.stage.name} failing: its last {r.failing} batch(es) of bars were skipped "
                   f"({r.last_error})" for r in self.stage_runners if r.failing]
        return [*self.supervisor.failures, *failing]

    @property
    def worker_failed(self) -> bool:
        return self.worker_thread is not None and not self.worker_thread.is_alive() and self.worker.failed

    def _wait_drained(self, topic: str, group: str, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.bus.lag(topic, group) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)

    def _status(self, rate: float, *, final: bool = False) -> None:
        s = self.worker.stats
        lag = self.bus.lag(TICKS, GROUP)
        line = (f"ticks/s {rate:>10,.0f} | ticks {s.ticks:>11,} | bars {s.bars:>8,} | "
                f"bus lag {lag:>5} | dead letters {s.deadletters:>6,}")
        if final:
            line = f"done: ticks {s.ticks:,} | bars {s.bars:,} | dead letters {s.deadletters:,} | published {self.publisher.published:,}"
        if sys.stderr.isatty() and not final:
            sys.stderr.write("\r" + line)
        else:
            sys.stderr.write(("\n" if sys.stderr.isatty() else "") + line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.services is not None:
            self.services.stop()
        self.bus.close()
        self.warehouse.close()
