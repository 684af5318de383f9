from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import polars as pl
import pytest

from tests.conftest import shared_file
from tickwise.alerts import (
    AlertRouter,
    AlertRule,
    MemoryNotifier,
    Outbox,
    SnsNotifier,
    WebhookNotifier,
)
from tickwise.exceptions import InputError

MINUTE = 60 * 10**9


def _burst(n: int, symbol: str = "AAPL") -> list[dict[str, object]]:
    return [{"symbol": symbol, "timeframe": "1m", "ts": i * MINUTE, "detector": "zscore", "score": 9.0,
             "threshold": 5.0, "kind": "volume_burst", "explanation": "volume 14.0x its 60-bar typical"}
            for i in range(n)]


class _Hook:
    """A local HTTP server on 127.0.0.1 whose answers the test scripts."""

    def __init__(self, *, fail_first: int = 0, always_fail: bool = False, hold: threading.Event | None = None):
        self.bodies: list[dict] = []
        self.entered = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                hook.entered.set()
                if hold is not None:
                    hold.wait(10)
                hook.bodies.append(body)
                failing = always_fail or len(hook.bodies) <= fail_first
                self.send_response(500 if failing else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def hook_factory() -> Iterator:
    made: list[_Hook] = []

    def make(**kw: object) -> _Hook:
        made.append(_Hook(**kw))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for h in made:
        h.stop()


def test_router_burst_of_100_one_notification_per_cooldown():
    sink = MemoryNotifier()
    box = Outbox([sink], base_delay_s=0.01)
    router = AlertRouter([AlertRule(name="anomaly", cooldown_s=30 * 60)])
    box.submit(router.route(_burst(100)))
    assert box.flush(timeout_s=5)
    box.close()
    assert len(sink.sent) == math.ceil(100 / 30)
    assert [p["ts"] // MINUTE for p in sink.sent] == [0, 30, 60, 90]
    assert [p["suppressed_since_last"] for p in sink.sent] == [0, 29, 29, 29]


def test_router_redelivered_anomalies_raise_nothing_new():
    router = AlertRouter([AlertRule(name="anomaly", cooldown_s=0)])
    first = router.route(_burst(5))
    again = router.route(_burst(5))
    assert len(first) == 5 and again == []


def test_router_cooldown_is_per_symbol_and_rule():
    router = AlertRouter([AlertRule(name="a", cooldown_s=3600), AlertRule(name="b", cooldown_s=3600)])
    alerts = router.route(_burst(10, "AAPL") + _burst(10, "MSFT"))
    assert sorted((a.anomaly["symbol"], a.rule) for a in alerts) == [
        ("AAPL", "a"), ("AAPL", "b"), ("MSFT", "a"), ("MSFT", "b")]


def test_webhook_failing_500_is_retried_with_backoff_then_sent(hook_factory):
    hook = hook_factory(fail_first=3)
    box = Outbox([WebhookNotifier(hook.url)], base_delay_s=0.05, max_delay_s=1.0)
    box.submit(AlertRouter([AlertRule(name="r", cooldown_s=0)]).route(_burst(1)))
    assert box.flush(timeout_s=10)
    box.close()
    d = box.deliveries()[0]
    assert (d.status, d.attempts) == ("sent", 4)
    assert d.delays_s == [0.05, 0.1, 0.2]
    assert len(hook.bodies) == 4 and hook.bodies[-1]["symbol"] == "AAPL"


def test_webhook_always_failing_stays_visible_as_failed_then_retry(hook_factory):
    hook = hook_factory(always_fail=True)
    box = Outbox([WebhookNotifier(hook.url)], base_delay_s=0.01, max_delay_s=0.02, max_attempts=3)
    box.submit(AlertRouter([AlertRule(name="r", cooldown_s=0)]).route(_burst(2)))
    assert box.flush(timeout_s=10)
    failed = box.failed()
    assert len(failed) == 2 and all(d.attempts == 3 and "500" in d.last_error for d in failed)
    assert box.retry_failed() == 2
    assert len(box.pending()) + len(box.failed()) == 2
    box.close()


class _Buggy:
    """A notifier with a bug: its first ``fail_first`` sends raise something other than NotifierError."""

    name = "buggy"

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.calls = 0
        self.sent: list[dict] = []

    def send(self, payload: dict) -> None:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise KeyError("webhook_url")
        self.sent.append(dict(payload))


def test_notifier_raising_an_unexpected_error_is_retried_and_its_thread_goes_on(caplog):
    buggy = _Buggy(fail_first=2)
    box = Outbox([buggy], base_delay_s=0.01, max_delay_s=0.02)
    box.submit(AlertRouter([AlertRule(name="r", cooldown_s=0)]).route(_burst(3)))
    assert box.flush(timeout_s=10)
    box.close()
    assert [d.status for d in box.deliveries()] == ["sent"] * 3 and len(buggy.sent) == 3
    assert sum(d.attempts for d in box.deliveries()) == 5
    assert any("KeyError" in r.getMessage() for r in caplog.records)


def test_outbox_retries_past_a_thousand_attempts_without_overflow():
    """The doubling backoff once overflowed a float after 1024 attempts and killed the
    notifier's thread, leaving its deliveries stuck (seen with a large max_attempts)."""
    box = Outbox([MemoryNotifier(fail_first=10**9)], base_delay_s=1e-6, max_delay_s=1e-6, max_attempts=10**6)
    box.submit(AlertRouter([AlertRule(name="r", cooldown_s=0)]).route(_burst(1)))
    deadline = time.monotonic() + 20
    while box.deliveries()[0].attempts < 1100:
        assert time.monotonic() < deadline, f"stuck at {box.deliveries()[0].attempts} attempts"
        time.sleep(0.01)
    assert all(t.is_alive() for t in box._threads)
    box.close()
    assert box.deliveries()[0].status == "pending"


def test_stage_hung_webhook_never_blocks_pipeline(hook_factory):
    from tickwise.anomaly.stage import AnomalyStage

    release = threading.Event()
    hook = hook_factory(hold=release)
    stage = AnomalyStage(timeframes=("1m",), detectors=("zscore",), notifiers=[WebhookNotifier(hook.url)],
                         rules=[AlertRule(name="r", cooldown_s=0)])
    bars = _bars(400, spike_at=[300, 350])
    try:
        out1 = stage.on_bars(bars.head(320))
        assert hook.entered.wait(10)  # the webhook is now hanging on the first alert
        out2 = stage.on_bars(bars.tail(80))  # returns although the notifier is stuck
        assert not release.is_set()
        assert "anomalies" in out1.tables and "anomalies" in out2.tables
        statuses = pl.concat([o.tables["alerts"] for o in (out1, out2) if "alerts" in o.tables])
        assert set(statuses["status"]) == {"pending"}
    finally:
        release.set()
        assert stage.outbox.flush(timeout_s=10)
        stage.close()
    final = stage.outbox.deliveries()
    assert final and all(d.status == "sent" for d in final)


def _bars(n: int, *, spike_at: list[int]) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    volume = rng.lognormal(8, 0.2, n)
    volume[spike_at] *= 60
    start = 1_704_205_800_000_000_000
    return pl.DataFrame({
        "symbol": ["AAPL"] * n, "timeframe": ["1m"] * n,
        "ts": pl.Series(np.arange(n) * MINUTE + start).cast(pl.Datetime("ns", "UTC")),
        "open": close, "high": close * 1.001, "low": close * 0.999, "close": close, "volume": volume,
        "trades": np.full(n, 10), "vwap": close,
    })


# the warehouse (not this area) still calls DuckDB's deprecated fetch_arrow_table()
@pytest.mark.filterwarnings("ignore:fetch_arrow_table:DeprecationWarning")
def test_stage_real_bars_commit_to_warehouse_and_cli_lists_them(settings, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from tickwise.alerts.tables import ALERTS
    from tickwise.anomaly.inject import inject
    from tickwise.anomaly.stage import AnomalyStage
    from tickwise.app import build_warehouse
    from tickwise.cli import app
    from tickwise.codec import decode_json
    from tickwise.sources.files import read_bars

    bars = read_bars(shared_file("goog_daily_backtesting.csv")).sort("ts")
    bars, events = inject(bars, kinds=["volume_burst"], rate=0.01, start=800, seed=2, magnitude=(12, 16))
    sink = MemoryNotifier()
    stage = AnomalyStage(timeframes=("1d",), detectors=("zscore",), notifiers=[sink],
                         rules=[AlertRule(name="r", cooldown_s=0)])
    warehouse = build_warehouse(settings)
    topics: list[bytes] = []
    try:
        for chunk in bars.iter_slices(250):
            out = stage.on_bars(chunk)
            warehouse.commit({k: v.to_arrow() for k, v in out.tables.items()})
            topics.extend(out.topics.get("anomalies", []))
        assert stage.outbox.flush(timeout_s=5)
        out = stage.on_bars(bars.head(0))
        warehouse.commit({k: v.to_arrow() for k, v in out.tables.items()})
        found = pl.from_arrow(warehouse.read("anomalies", where={"symbol": "GOOG"}))
        alerts = pl.from_arrow(warehouse.read(ALERTS.name, order_by="ts"))
    finally:
        warehouse.close()
        stage.close()
    burst_ts = {int(bars["ts"].dt.epoch("ns")[e.start]) for e in events}
    got_ts = set(found.filter(pl.col("kind") == "volume_burst")["ts"].dt.epoch("ns").cast(pl.Int64).to_list())
    assert len(burst_ts & {t // 1000 * 1000 for t in got_ts}) >= len(burst_ts) // 2
    assert found.columns == ["symbol", "timeframe", "ts", "detector", "score", "threshold", "kind",
                             "explanation", "ts_detected"]
    assert len(topics) == found.height and decode_json(topics[0])["symbol"] == "GOOG"
    assert set(alerts["status"]) == {"sent"} and alerts.height == len(sink.sent) == found.height
    monkeypatch.setenv("TICKWISE_DATA_DIR", str(settings.data_dir))
    result = CliRunner().invoke(app, ["anomalies", "GOOG", "--last", "5", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert len(rows) == 5 and all(r["symbol"] == "GOOG" for r in rows)
    only = CliRunner().invoke(app, ["anomalies", "GOOG", "--timeframe", "1d", "--detector", "zscore", "--json"])
    assert only.exit_code == 0 and len(only.output.strip().splitlines()) == min(20, found.height)
    none = CliRunner().invoke(app, ["anomalies", "GOOG", "--timeframe", "1m"])
    assert none.exit_code == 0 and "no anomalies for GOOG timeframe 1m" in none.output
    for bad, message in ((["--timeframe", "7x"], "timeframe must look like"),
                         (["--detector", "magic"], "--detector must be")):
        result = CliRunner().invoke(app, ["anomalies", "GOOG", *bad])
        assert isinstance(result.exception, InputError) and message in str(result.exception)


def test_sns_notifier_publishes_to_moto_and_sqs_receives(moto_s3):
    import boto3

    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    sns = boto3.client("sns", region_name="us-east-1", endpoint_url=moto_s3, **creds)
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_s3, **creds)
    topic = sns.create_topic(Name="tickwise-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    box = Outbox([SnsNotifier(topic, endpoint_url=moto_s3, **creds)], base_delay_s=0.05)
    box.submit(AlertRouter([AlertRule(name="r", cooldown_s=0)]).route(_burst(1)))
    assert box.flush(timeout_s=15)
    box.close()
    assert box.deliveries()[0].status == "sent"
    msgs = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2).get("Messages", [])
    assert len(msgs) == 1
    body = json.loads(json.loads(msgs[0]["Body"])["Message"])
    assert body["symbol"] == "AAPL" and body["kind"] == "volume_burst"
