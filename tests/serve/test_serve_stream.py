"""The live WebSocket stream: bars, forecasts and anomalies pushed as they reach the bus."""

from __future__ import annotations

import json
import threading

import polars as pl
from websockets.sync.client import connect

from tests.serve.conftest import WAREHOUSE_WARNINGS
from tickwise.bus.base import ANOMALIES, FORECASTS, bars_topic
from tickwise.codec import encode_json, encode_table
from tickwise.domain import BAR_SCHEMA

pytestmark = WAREHOUSE_WARNINGS


def _bar_payload(bars: pl.DataFrame) -> bytes:
    return encode_table(bars.with_columns(pl.lit("1m").alias("timeframe")).to_arrow().cast(BAR_SCHEMA))


def _receive(ws, n: int) -> list[dict]:
    events: list[dict] = []
    while len(events) < n:
        message = json.loads(ws.recv(timeout=10))
        assert isinstance(message, list)
        events.extend(message)
    return events


def test_stream_pushes_new_bars_forecasts_and_anomalies_of_chosen_symbols(api):
    url, bus, bars = api
    ws_url = url.replace("http", "ws") + "/api/v1/stream?symbols=AAPL&timeframes=1m"
    with connect(ws_url) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello" and hello["symbols"] == ["AAPL"]
        two = pl.concat([bars.filter(pl.col("symbol") == s).tail(1) for s in ("AAPL", "MSFT", "IBM")
                         if s in bars["symbol"].to_list()])
        bus.publish(bars_topic("1m"), [_bar_payload(two)])
        bus.publish(FORECASTS, [encode_json({"symbol": "MSFT", "timeframe": "1m", "ts": 1, "close": 1.0})])
        bus.publish(FORECASTS, [encode_json({"symbol": "AAPL", "timeframe": "1m", "ts": 2, "close": 99.5,
                                             "model": "naive"})])
        bus.publish(ANOMALIES, [encode_json([{"symbol": "AAPL", "timeframe": "1m", "ts": 2, "detector": "zscore",
                                              "score": 9.0, "explanation": "volume 14x its 60-bar mean"}])])
        events = _receive(ws, 3)
    kinds = [e["type"] for e in events]
    assert kinds == ["bar", "forecast", "anomaly"]
    bar = events[0]["data"]
    want = bars.filter(pl.col("symbol") == "AAPL").tail(1)
    assert bar["symbol"] == "AAPL" and bar["close"] == want["close"][0] and bar["timeframe"] == "1m"
    assert events[1]["data"]["close"] == 99.5
    assert events[2]["data"]["explanation"].startswith("volume 14x")


def test_stream_reads_as_viewer_so_publishers_never_wait(api):
    url, bus, bars = api
    aapl = bars.filter(pl.col("symbol") == "AAPL").tail(100)
    ws_url = url.replace("http", "ws") + "/api/v1/stream?symbols=AAPL&kinds=bar"
    with connect(ws_url) as ws:
        json.loads(ws.recv(timeout=10))
        # the bus holds 8 entries: a consumer group that lagged would block this publisher
        publisher = threading.Thread(target=lambda: [bus.publish(bars_topic("1m"), [_bar_payload(aapl[i:i + 1])])
                                                     for i in range(aapl.height)])
        publisher.start()
        publisher.join(timeout=20)
        assert not publisher.is_alive()
        closes = []
        while not closes or closes[-1] != aapl["close"][-1]:
            closes.extend(e["data"]["close"] for e in json.loads(ws.recv(timeout=10)))
    assert set(closes) <= set(aapl["close"].to_list())


def test_stream_rejects_bad_parameters_with_a_message(api):
    url, _, _ = api
    with connect(url.replace("http", "ws") + "/api/v1/stream?kinds=bars") as ws:
        error = json.loads(ws.recv(timeout=10))
    assert error["type"] == "error" and "kinds" in error["detail"]
