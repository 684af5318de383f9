"""Undelivered alerts survive a restart: pending rows of the ``alerts`` table are re-queued."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import shared_file
from tickwise.alerts.notifiers import MemoryNotifier
from tickwise.alerts.outbox import Delivery, Outbox
from tickwise.alerts.rules import Alert, AlertRule
from tickwise.alerts.tables import ALERTS
from tickwise.anomaly.stage import AnomalyStage
from tickwise.pipeline.stages import StageOutput
from tickwise.store import Warehouse, open_warehouse

NEVER = 10**9  # fail_first for a notifier that never succeeds


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb://{tmp_path / 'w.duckdb'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="module")
def goog_with_bursts() -> pl.DataFrame:
    """Real daily GOOG bars with injected volume bursts, so the stage raises alerts."""
    from tickwise.anomaly.inject import inject
    from tickwise.sources.files import read_bars

    bars = read_bars(shared_file("goog_daily_backtesting.csv")).sort("ts")
    return inject(bars, kinds=["volume_burst"], rate=0.01, start=800, seed=2, magnitude=(12, 16))[0]


def _commit(warehouse: Warehouse, out: StageOutput) -> None:
    warehouse.commit({k: v.to_arrow() for k, v in out.tables.items()})


def _stage(warehouse: Warehouse, *, outbox: Outbox | None = None,
           notifiers: list[MemoryNotifier] | None = None) -> AnomalyStage:
    return AnomalyStage(timeframes=("1d",), detectors=("zscore",), rules=[AlertRule(name="r", cooldown_s=0)],
                        outbox=outbox, notifiers=notifiers, warehouse=warehouse)


def _alerts(warehouse: Warehouse) -> pl.DataFrame:
    return pl.from_arrow(warehouse.read(ALERTS.name, order_by="ts"))  # type: ignore[return-value]


def _wait(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_stage_restart_delivers_pending_alerts_once_with_same_payload(warehouse_url, goog_with_bursts, caplog):
    bars = goog_with_bursts
    warehouse = open_warehouse(warehouse_url)
    try:
        # run 1: both notifiers fail on every attempt, so every delivery stays pending
        box = Outbox([MemoryNotifier(fail_first=NEVER), MemoryNotifier(name="pager", fail_first=NEVER)],
                     base_delay_s=0.001, max_delay_s=0.002, max_attempts=10_000)
        first = _stage(warehouse, outbox=box)
        for chunk in bars.iter_slices(250):
            _commit(warehouse, first.on_bars(chunk))
        _wait(lambda: all(d.attempts >= 2 for d in box.deliveries()))
        first.close()
        _commit(warehouse, first.on_bars(bars.head(0)))  # the status changes up to the shutdown
        before = {(d.alert.alert_id, d.notifier): d for d in box.deliveries()}
        stored = _alerts(warehouse)
        assert before and set(stored["status"]) == {"pending"} and stored.height == len(before)
        assert {(r["alert_id"], r["notifier"]): r["attempts"] for r in stored.iter_rows(named=True)} == {
            k: d.attempts for k, d in before.items()}

        # run 2, after a "restart": only the memory notifier is configured, and it works;
        # the bus replays the same bars, which raise the same alerts again
        sink = MemoryNotifier()
        caplog.set_level(logging.WARNING, logger="tickwise.anomaly.stage")
        second = _stage(warehouse, notifiers=[sink])
        try:
            for chunk in bars.iter_slices(250):
                _commit(warehouse, second.on_bars(chunk))
            assert second.outbox.flush(timeout_s=10)
            _commit(warehouse, second.on_bars(bars.head(0)))
        finally:
            second.close()
        after = _alerts(warehouse)
    finally:
        warehouse.close()

    pending = {aid: d for (aid, name), d in before.items() if name == "memory"}
    assert sorted(p["alert_id"] for p in sink.sent) == sorted(pending)  # each one, exactly once
    for p in sink.sent:
        assert list(p.items()) == list(pending[p["alert_id"]].alert.payload().items())  # same keys, order, values
    mine = after.filter(pl.col("notifier") == "memory")
    assert set(mine["status"]) == {"sent"} and mine.height == len(pending)
    assert dict(zip(mine["alert_id"], mine["attempts"], strict=True)) == {
        aid: d.attempts + 1 for aid, d in pending.items()}
    # the notifier that is gone keeps its rows untouched, and is logged once
    gone = after.filter(pl.col("notifier") == "pager")
    assert set(gone["status"]) == {"pending"} and gone.height == len(pending)
    assert gone.sort("alert_id").equals(stored.filter(pl.col("notifier") == "pager").sort("alert_id"))
    warnings = [r.getMessage() for r in caplog.records if "no longer configured" in r.getMessage()]
    assert len(warnings) == 1 and f"{len(pending)} pending" in warnings[0] and "pager" in warnings[0]


def _aapl_anomaly(ts: int) -> dict[str, object]:
    return {"symbol": "AAPL", "timeframe": "1m", "ts": ts, "detector": "zscore", "score": 9.0,
            "threshold": 5.0, "kind": "gap", "explanation": "gap +9.0 sigma", "ts_detected": 10**18}


def _aapl_bar(ts: int) -> pl.DataFrame:
    """One flat daily AAPL bar: enough for the stage to re-queue AAPL's pending deliveries."""
    return pl.DataFrame({"symbol": ["AAPL"], "timeframe": ["1d"], "open": [1.0], "high": [1.0], "low": [1.0],
                         "close": [1.0], "volume": [1.0]}).with_columns(
        pl.lit(ts).cast(pl.Datetime("ns", "UTC")).alias("ts"))


def test_stage_restart_without_anomaly_row_resends_with_nulls_and_warns(tmp_path, caplog):
    from tickwise.anomaly.stage import alert_rows

    anomaly = _aapl_anomaly(60 * 10**9)
    saved = Delivery(Alert("a1", "r", anomaly, suppressed=4), "memory", attempts=2, last_error="503")
    warehouse = open_warehouse(f"duckdb://{tmp_path / 'w.duckdb'}")
    warehouse.commit({ALERTS.name: alert_rows([saved]).to_arrow()})  # no anomalies row committed
    sink = MemoryNotifier()
    caplog.set_level(logging.WARNING, logger="tickwise.anomaly.stage")
    stage = _stage(warehouse, notifiers=[sink])
    try:
        assert stage.outbox.deliveries() == []  # nothing is resent before a bar of AAPL arrives
        stage.on_bars(_aapl_bar(120 * 10**9))
        assert stage.outbox.flush(timeout_s=5)
    finally:
        stage.close()
        warehouse.close()
    assert sink.sent == [{**saved.alert.payload(), "score": None, "threshold": None, "ts_detected": None}]
    assert [d.attempts for d in stage.outbox.deliveries()] == [3]
    assert any("no row in the anomalies table" in r.getMessage() for r in caplog.records)


def test_two_stages_sharing_a_warehouse_each_resend_only_their_symbols(tmp_path, goog_with_bursts):
    bars = pl.concat([goog_with_bursts, goog_with_bursts.with_columns(pl.lit("GOOX").alias("symbol"))])
    warehouse = open_warehouse(f"duckdb://{tmp_path / 'w.duckdb'}")
    sinks = {"GOOG": MemoryNotifier(), "GOOX": MemoryNotifier()}
    try:
        box = Outbox([MemoryNotifier(fail_first=NEVER)], base_delay_s=0.001, max_delay_s=0.002, max_attempts=10_000)
        first = _stage(warehouse, outbox=box)
        _commit(warehouse, first.on_bars(bars))
        _wait(lambda: all(d.attempts >= 1 for d in box.deliveries()))
        first.close()
        _commit(warehouse, first.on_bars(bars.head(0)))
        pending = {d.alert.alert_id: str(d.alert.anomaly["symbol"]) for d in box.deliveries()}
        assert set(pending.values()) == {"GOOG", "GOOX"}
        # two workers after the restart, each owning one symbol's partition
        stages = {sym: _stage(warehouse, notifiers=[sinks[sym]]) for sym in sinks}
        try:
            for sym, stage in stages.items():
                stage.on_bars(bars.filter(pl.col("symbol") == sym))
                assert stage.outbox.flush(timeout_s=10)
        finally:
            for stage in stages.values():
                stage.close()
    finally:
        warehouse.close()
    sent = [(p["alert_id"], sym) for sym, sink in sinks.items() for p in sink.sent if p["alert_id"] in pending]
    assert sorted(aid for aid, _ in sent) == sorted(pending)  # every pending alert once, not once per worker
    assert all(pending[aid] == sym for aid, sym in sent)


def test_a_pending_delivery_sent_meanwhile_by_another_worker_is_not_resent(tmp_path, caplog):
    """A worker loads the pending deliveries at start and resends a symbol's once its bars
    arrive; by then the worker that owned the symbol before a rebalance may have delivered
    them. The table is asked again, so nothing is sent twice."""
    from tickwise.anomaly.stage import alert_rows

    anomaly = _aapl_anomaly(60 * 10**9)
    other = {**anomaly, "ts": 120 * 10**9}
    saved = [Delivery(Alert("a1", "r", anomaly), "memory", attempts=2), Delivery(Alert("a2", "r", other), "memory")]
    warehouse = open_warehouse(f"duckdb://{tmp_path / 'w.duckdb'}")
    warehouse.commit({ALERTS.name: alert_rows(saved).to_arrow()})
    sink = MemoryNotifier()
    caplog.set_level(logging.INFO, logger="tickwise.anomaly.stage")
    stage = _stage(warehouse, notifiers=[sink])  # loads both as pending
    try:
        # the previous owner delivers a1 before this worker sees a bar of AAPL
        warehouse.commit({ALERTS.name: alert_rows([Delivery(saved[0].alert, "memory", status="sent",
                                                             attempts=3)]).to_arrow()})
        stage.on_bars(_aapl_bar(180 * 10**9))
        assert stage.outbox.flush(timeout_s=5)
    finally:
        stage.close()
        warehouse.close()
    assert [p["alert_id"] for p in sink.sent] == ["a2"]
    assert any("1 pending alert deliveries were delivered by another worker" in r.getMessage() for r in caplog.records)


def _saved(aid: str, **kw: object) -> Delivery:
    return Delivery(Alert(aid, "r", {"symbol": "AAPL", "ts": 0}), "memory", **kw)  # type: ignore[arg-type]


@pytest.fixture
def outboxes() -> Iterator[list[Outbox]]:
    made: list[Outbox] = []
    yield made
    for box in made:
        box.close()


def test_outbox_restore_attempts_continue_from_stored_count(outboxes):
    sink = MemoryNotifier(fail_first=1)
    outboxes.append(box := Outbox([sink], max_attempts=5, base_delay_s=0.01))
    box.restore([_saved("a1", attempts=3, last_error="503", ts_created=123)])
    assert box.flush(timeout_s=5)
    [d] = box.deliveries()
    assert (d.status, d.attempts, d.delays_s, d.last_error, d.ts_created) == ("sent", 5, [box.backoff_s(4)], "", 123)
    assert sink.attempts == 2 and sink.sent == [{"alert_id": "a1", "rule": "r", "suppressed_since_last": 0,
                                                 "symbol": "AAPL", "ts": 0}]


def test_outbox_restore_stops_at_max_attempts_counting_stored_ones(outboxes):
    sink = MemoryNotifier(fail_first=NEVER)
    outboxes.append(box := Outbox([sink], max_attempts=5, base_delay_s=0.01))
    box.restore([_saved("a1", attempts=3)])
    assert box.flush(timeout_s=5)
    assert [(d.status, d.attempts) for d in box.deliveries()] == [("failed", 5)] and sink.attempts == 2


def test_outbox_restore_already_sent_is_not_resent(outboxes):
    sink = MemoryNotifier()
    outboxes.append(box := Outbox([sink], base_delay_s=0.01))
    box.submit([Alert("live", "r", {"symbol": "AAPL"})])
    assert box.flush(timeout_s=5) and len(sink.sent) == 1
    box.changes()
    restored = box.restore([_saved("done", status="sent", attempts=2), _saved("live", attempts=1)])
    assert [d.alert.alert_id for d in restored] == ["done"]  # "live" is already known here: skipped
    assert box.submit([Alert("done", "r", {"symbol": "AAPL"})]) == []
    assert box.flush(timeout_s=5)
    assert [p["alert_id"] for p in sink.sent] == ["live"]
    assert [(d.alert.alert_id, d.status, d.attempts) for d in box.deliveries()] == [
        ("live", "sent", 1), ("done", "sent", 2)]
    assert box.changes() == []  # restoring is not a status change: the table already has these rows


def test_outbox_restore_unknown_notifier_or_status_raises(outboxes):
    outboxes.append(box := Outbox([MemoryNotifier()], base_delay_s=0.01))
    with pytest.raises(ValueError, match="notifier must be one of \\['memory'\\], was 'pager'"):
        box.restore([Delivery(Alert("a1", "r", {}), "pager")])
    with pytest.raises(ValueError, match="status must be pending, sent or failed, was 'lost'"):
        box.restore([_saved("a1", status="lost")])
    assert box.deliveries() == []


def test_stage_restart_raises_each_alert_once_and_keeps_the_cooldown(warehouse_url, goog_with_bursts):
    """A restart in the middle of a cooldown, with the bus replaying every bar: the alerts sent
    by both runs together are exactly those of one uninterrupted run."""
    bars = goog_with_bursts
    cooldown_s = 40 * 86400

    def stage(warehouse: Warehouse | None, sink: MemoryNotifier) -> AnomalyStage:
        return AnomalyStage(timeframes=("1d",), detectors=("zscore",), rules=[AlertRule(name="r", cooldown_s=cooldown_s)],
                            notifiers=[sink], warehouse=warehouse)

    def run(s: AnomalyStage, frame: pl.DataFrame, warehouse: Warehouse | None = None) -> pl.DataFrame:
        found = []
        try:
            for chunk in frame.iter_slices(250):
                out = s.on_bars(chunk)
                found.extend([out.tables["anomalies"]] if "anomalies" in out.tables else [])
                if warehouse is not None:
                    _commit(warehouse, out)
            assert s.outbox.flush(timeout_s=10)
            if warehouse is not None:
                _commit(warehouse, s.on_bars(frame.head(0)))
        finally:
            s.close()
        return pl.concat(found)

    reference = MemoryNotifier()
    anomalies = run(stage(None, reference), bars)
    sent_ts = sorted(p["ts"] for p in reference.sent)
    # restart right after an alert whose cooldown suppresses a later anomaly
    ts_ns = anomalies["ts"].dt.epoch("ns").sort().to_list()
    first = next(t for t in sent_ts if any(t < a < t + cooldown_s * 10**9 for a in ts_ns))
    split = int(bars["ts"].dt.epoch("ns").search_sorted(first, side="right"))
    assert 0 < split < bars.height and len(sent_ts) >= 3

    warehouse = open_warehouse(warehouse_url)
    try:
        before, after = MemoryNotifier(), MemoryNotifier()
        run(stage(warehouse, before), bars.head(split), warehouse)
        run(stage(warehouse, after), bars, warehouse)  # the restart: every bar again, from the start
    finally:
        warehouse.close()
    ids = [p["alert_id"] for p in before.sent + after.sent]
    assert sorted(ids) == sorted(p["alert_id"] for p in reference.sent)
    assert not {p["alert_id"] for p in before.sent} & {p["alert_id"] for p in after.sent}


def test_stage_restart_reads_a_bounded_alert_history_and_every_pending_delivery(tmp_path):
    """The router's memory comes from the newest ``alert_memory`` alerts only (the table grows
    with history; a restart must not read it all), while a pending delivery older than those
    is still re-queued: nothing undelivered is lost."""
    from tickwise.alerts.rules import alert_id
    from tickwise.anomaly.stage import alert_rows

    def anomaly(minute: int) -> dict[str, object]:
        return {"symbol": "AAPL", "timeframe": "1m", "ts": minute * 60 * 10**9, "detector": "zscore",
                "score": 9.0, "threshold": 5.0, "kind": "gap", "explanation": "gap +9.0 sigma", "ts_detected": 10**18}

    history = [anomaly(m) for m in range(10)]
    rows = [Delivery(Alert(alert_id("r", a), "r", a), "memory", status="sent", attempts=1) for a in history[1:]]
    pending = Delivery(Alert(alert_id("r", history[0]), "r", history[0]), "memory", attempts=2)
    warehouse = open_warehouse(f"duckdb://{tmp_path / 'w.duckdb'}")
    warehouse.commit({"anomalies": pl.DataFrame(history).with_columns(
        pl.col("ts", "ts_detected").cast(pl.Datetime("ns", "UTC"))).to_arrow(),
        ALERTS.name: alert_rows([pending, *rows]).to_arrow()})
    reads: list[dict[str, object]] = []
    read = warehouse.read

    def spy(table: str, **kw: object):  # type: ignore[no-untyped-def]
        if table == ALERTS.name:
            reads.append(kw)
        return read(table, **kw)

    warehouse.read = spy  # type: ignore[method-assign]
    sink = MemoryNotifier()
    stage = AnomalyStage(timeframes=("1m",), detectors=("zscore",), rules=[AlertRule(name="r", cooldown_s=0)],
                         notifiers=[sink], warehouse=warehouse, alert_memory=3)
    try:
        assert reads and all(kw.get("last") or kw.get("where") for kw in reads)  # no read of the whole table
        remembered = stage.router.route(history[7:])
        forgotten = [a.anomaly["ts"] // (60 * 10**9) for a in stage.router.route(history[:7])]
        stage._restore_symbols(["AAPL"])
        assert stage.outbox.flush(timeout_s=5)
    finally:
        stage.close()
        warehouse.close()
    assert remembered == [] and forgotten == list(range(7))  # the newest 3 are remembered, older ones not
    assert [p["alert_id"] for p in sink.sent] == [pending.alert.alert_id]
    assert [d.attempts for d in stage.outbox.deliveries()] == [3]


def test_stage_alert_memory_below_one_is_a_config_error():
    from tickwise.exceptions import ConfigError

    with pytest.raises(ConfigError, match="alert_memory must be >= 1"):
        AnomalyStage(timeframes=("1m",), alert_memory=0)


def test_failover_keeps_the_cooldowns_and_hands_pending_deliveries_over(warehouse_url, goog_with_bursts):
    """Worker B starts first and owns nothing; A takes the bars, raises alerts (its notifier
    fails, so they stay pending), then a rebalance moves the bars to B. B goes on with A's
    cooldowns (the alerts both send are exactly those of one uninterrupted run) and resends
    A's undelivered alerts once each; A stops retrying them."""
    from tickwise.pipeline.stages import warehouse_history

    bars = goog_with_bursts
    cooldown_s = 40 * 86400

    def stage(warehouse: Warehouse | None, notifier: MemoryNotifier) -> AnomalyStage:
        return AnomalyStage(timeframes=("1d",), detectors=("zscore",), rules=[AlertRule(name="r", cooldown_s=cooldown_s)],
                            outbox=Outbox([notifier], base_delay_s=0.01, max_delay_s=0.02, max_attempts=10_000),
                            warehouse=warehouse, history=warehouse_history(warehouse) if warehouse else None)

    reference = MemoryNotifier()
    one = stage(None, reference)
    found = [one.on_bars(chunk).tables.get("anomalies") for chunk in bars.iter_slices(250)]
    assert one.outbox.flush(timeout_s=10)
    one.close()
    sent_ts = sorted(p["ts"] for p in reference.sent)
    ts_ns = pl.concat([f for f in found if f is not None])["ts"].dt.epoch("ns").sort().to_list()
    # the handover comes right after an alert whose cooldown suppresses a later anomaly
    first = next(t for t in sent_ts if any(t < a < t + cooldown_s * 10**9 for a in ts_ns))
    split = int(bars["ts"].dt.epoch("ns").search_sorted(first, side="right"))

    warehouse = open_warehouse(warehouse_url)
    failing, working = MemoryNotifier(fail_first=NEVER), MemoryNotifier()
    b = stage(warehouse, working)  # started before A raised anything: its memory is empty
    a = stage(warehouse, failing)
    try:
        a.assigned("1d")
        for chunk in bars.head(split).iter_slices(250):
            warehouse.commit({"bars": chunk.to_arrow()})
            _commit(warehouse, a.on_bars(chunk))
        _wait(lambda: all(d.attempts >= 2 for d in a.outbox.deliveries()))
        _commit(warehouse, a.on_bars(bars.head(0)))
        undelivered = {d.alert.alert_id for d in a.outbox.pending()}
        assert undelivered and not a.outbox.failed()
        a.revoked("1d")  # the rebalance: A loses the bars, B gets them
        assert a.outbox.pending() == []
        tried = failing.attempts
        b.assigned("1d")
        for chunk in bars.slice(split).iter_slices(250):
            warehouse.commit({"bars": chunk.to_arrow()})
            _commit(warehouse, b.on_bars(chunk))
        assert b.outbox.flush(timeout_s=10)
        _commit(warehouse, b.on_bars(bars.head(0)))
        assert failing.attempts <= tried + 1  # at most the one in flight at the handover
    finally:
        a.close()
        b.close()
        stored = _alerts(warehouse)
        warehouse.close()
    ids = [p["alert_id"] for p in working.sent]
    assert sorted(ids) == sorted(p["alert_id"] for p in reference.sent)  # no alert twice, none missing
    assert undelivered <= set(ids)
    assert set(stored["status"]) == {"sent"}


def test_cooldown_holds_across_workers_analysing_other_timeframes_of_a_symbol(warehouse_url, goog_with_bursts):
    """On scale-out a symbol's bars of two timeframes may be analysed by two workers; both flag
    the same events (here: the same bars under two timeframe labels). Each reads the alerts
    around its anomalies from the table before routing, so per (symbol, rule) the two send
    what one worker alone sends."""
    cooldown_s = 40 * 86400

    def stage(warehouse: Warehouse | None, timeframe: str, sink: MemoryNotifier) -> AnomalyStage:
        return AnomalyStage(timeframes=(timeframe,), detectors=("zscore",), notifiers=[sink], warehouse=warehouse,
                            rules=[AlertRule(name="r", cooldown_s=cooldown_s)])

    alone = MemoryNotifier()
    one = stage(None, "1d", alone)
    for chunk in goog_with_bursts.iter_slices(250):
        one.on_bars(chunk)
    assert one.outbox.flush(timeout_s=10)
    one.close()

    warehouse = open_warehouse(warehouse_url)
    sinks = {"1d": MemoryNotifier(), "2d": MemoryNotifier()}
    workers = {tf: stage(warehouse, tf, sink) for tf, sink in sinks.items()}
    try:
        for chunk in goog_with_bursts.iter_slices(250):
            for tf, worker in workers.items():
                _commit(warehouse, worker.on_bars(chunk.with_columns(pl.lit(tf).alias("timeframe"))))
        for worker in workers.values():
            assert worker.outbox.flush(timeout_s=10)
    finally:
        for worker in workers.values():
            worker.close()
        warehouse.close()
    sent = sorted(p["ts"] for sink in sinks.values() for p in sink.sent)
    assert len(alone.sent) >= 3 and sinks["1d"].sent
    assert sent == sorted(p["ts"] for p in alone.sent)
