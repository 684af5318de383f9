"""The API through HTTP, against uvicorn on a free port, over real bars in DuckDB."""

from __future__ import annotations

import datetime as dt

import httpx
import numpy as np
import polars as pl

from tests.serve.conftest import API_KEY, WAREHOUSE_WARNINGS

pytestmark = WAREHOUSE_WARNINGS


def _bars(bars: pl.DataFrame, symbol: str) -> pl.DataFrame:
    return bars.filter(pl.col("symbol") == symbol).sort("ts")


def test_bars_latest_returns_newest_rows_oldest_first(api):
    url, _, bars = api
    got = httpx.get(f"{url}/api/v1/bars/AAPL", params={"timeframe": "1d", "limit": 50}).json()
    want = _bars(bars, "AAPL").tail(50)
    assert [r["close"] for r in got] == want["close"].to_list()
    assert [r["volume"] for r in got] == want["volume"].to_list()
    first = dt.datetime.fromisoformat(got[0]["ts"].replace("Z", "+00:00"))
    assert first == want["ts"][0]


def test_bars_range_keeps_start_and_excludes_end(api):
    url, _, bars = api
    aapl = _bars(bars, "AAPL")
    start, end = aapl["ts"][10], aapl["ts"][20]
    got = httpx.get(f"{url}/api/v1/bars/AAPL",
                    params={"start": start.isoformat(), "end": end.isoformat(), "limit": 1000}).json()
    assert len(got) == 10
    assert [r["open"] for r in got] == aapl["open"][10:20].to_list()


def test_bars_default_timeframe_is_the_symbols_own(api):
    url, _, _ = api
    got = httpx.get(f"{url}/api/v1/bars/AAPL", params={"limit": 3}).json()
    assert {r["timeframe"] for r in got} == {"1d"}


def test_bars_unknown_symbol_is_404_with_message(api):
    url, _, _ = api
    r = httpx.get(f"{url}/api/v1/bars/NOPE")
    assert r.status_code == 404
    assert "NOPE" in r.json()["detail"] and "AAPL" in r.json()["detail"]


def test_bars_bad_parameters_are_4xx_with_message(api):
    url, _, _ = api
    r = httpx.get(f"{url}/api/v1/bars/AAPL", params={"timeframe": "7x"})
    assert r.status_code == 400 and "timeframe" in r.json()["detail"]
    r = httpx.get(f"{url}/api/v1/bars/AAPL", params={"limit": 0})
    assert r.status_code == 422 and "limit" in str(r.json()["detail"])
    r = httpx.get(f"{url}/api/v1/bars/AAPL", params={"start": "yesterday"})
    assert r.status_code == 422
    r = httpx.get(f"{url}/api/v1/bars/AA%20PL")
    assert r.status_code == 422


def test_symbols_lists_every_loaded_symbol(api):
    url, _, bars = api
    got = httpx.get(f"{url}/api/v1/symbols").json()["symbols"]
    assert got == sorted(bars["symbol"].unique().to_list())


def test_forecasts_and_prediction_come_from_the_latest_forecast(api):
    url, _, bars = api
    aapl = _bars(bars, "AAPL")
    rows = httpx.get(f"{url}/api/v1/forecasts/AAPL", params={"limit": 5}).json()
    assert len(rows) == 5 and rows[-1]["model"] == "naive"
    assert rows[-1]["close"] == aapl["close"][-2]  # the naive forecast of the last bar
    pred = httpx.get(f"{url}/ml/predictions/AAPL").json()
    assert pred["predicted_price"] == rows[-1]["close"]
    assert 0.0 < pred["confidence"] < 1.0
    assert pred["lower_80"] < pred["predicted_price"] < pred["upper_80"]


def test_prediction_without_forecasts_is_404(api):
    url, _, _ = api
    r = httpx.get(f"{url}/ml/predictions/ZZZ")
    assert r.status_code == 404


def test_signals_before_any_rule_ran_is_an_empty_list(api):
    url, _, _ = api
    r = httpx.get(f"{url}/api/v1/signals/AAPL")
    assert r.status_code == 200 and r.json() == []


def test_accuracy_of_naive_forecast_equals_random_walk(api):
    url, _, bars = api
    got = httpx.get(f"{url}/api/v1/accuracy/AAPL", params={"window": 100}).json()
    (model,) = got["models"]
    assert model["model"] == "naive" and model["n"] == 100
    assert abs(model["error_ratio"] - 1.0) < 1e-12
    close = _bars(bars, "AAPL")["close"].to_numpy()
    sigma = float(np.std(np.diff(close)))
    moves = np.abs(np.diff(close))[-100:]
    assert model["coverage_80"] == float(np.mean(moves <= 1.2816 * sigma))
    assert model["coverage_95"] == float(np.mean(moves <= 1.96 * sigma))


def test_query_runs_read_only_sql_with_row_limit(api):
    url, _, bars = api
    r = httpx.get(f"{url}/api/v1/query", params={"sql": "SELECT symbol, count(*) AS n FROM bars GROUP BY symbol ORDER BY symbol"})
    body = r.json()
    assert body["columns"] == ["symbol", "n"]
    counts = bars.group_by("symbol").len().sort("symbol")
    assert body["rows"] == [[s, n] for s, n in counts.iter_rows()]
    r = httpx.get(f"{url}/api/v1/query", params={"sql": "SELECT * FROM bars", "max_rows": 7}).json()
    assert r["row_count"] == 7 and r["truncated"] is True


def test_query_refuses_writes_with_400(api):
    url, _, _ = api
    for sql in ("DELETE FROM bars", "DROP TABLE bars", "SELECT 1; DELETE FROM bars"):
        r = httpx.get(f"{url}/api/v1/query", params={"sql": sql})
        assert r.status_code == 400, sql
        assert "read-only" in r.json()["detail"] or "one statement" in r.json()["detail"]
    assert httpx.get(f"{url}/api/v1/query", params={"sql": "SELECT count(*) FROM bars"}).json()["rows"][0][0] > 0


def test_query_file_reads_copy_and_attach_refused_with_400(api, tmp_path):
    url, _, _ = api
    secret = tmp_path / "secret.csv"
    secret.write_text("token\ns3cr3t-value\n")
    out = tmp_path / "dump.csv"
    attempts = [
        f"SELECT * FROM read_csv('{secret}')",
        f"SELECT * FROM read_csv_auto('{secret}')",
        f"FROM '{secret}'",
        f"DESCRIBE '{secret}'",
        f"SELECT * FROM read_text('{secret}')",
        f"SELECT * FROM glob('{tmp_path}/*')",
        f"SELECT * FROM bars WHERE symbol IN (SELECT token FROM read_csv('{secret}'))",
        f"WITH s AS (SELECT * FROM read_parquet('{secret}')) SELECT * FROM s",
        f"SUMMARIZE SELECT * FROM read_json('{secret}')",
        f"SELECT * FROM query('SELECT * FROM read_csv(''{secret}'')')",
        f"EXPLAIN ANALYZE SELECT * FROM read_csv('{secret}')",
        f"COPY bars TO '{out}'",
        f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
        "SELECT getenv('TICKWISE_API_KEY')",
    ]
    for sql in attempts:
        for r in (httpx.get(f"{url}/api/v1/query", params={"sql": sql}),
                  httpx.post(f"{url}/api/v1/query", json={"sql": sql})):
            assert r.status_code == 400, (sql, r.status_code, r.text)
            assert "s3cr3t" not in r.text
            detail = r.json()["detail"]
            assert "cannot be read" in detail or "read-only" in detail or "refused" in detail, (sql, detail)
    assert not out.exists()
    assert not (tmp_path / "other.duckdb").exists()
    described = httpx.get(f"{url}/api/v1/query", params={"sql": "DESCRIBE bars"}).json()
    assert "close" in [row[0] for row in described["rows"]]
    posted = httpx.post(f"{url}/api/v1/query", json={"sql": "SELECT count(*) AS n FROM bars", "max_rows": 1}).json()
    assert posted["columns"] == ["n"] and posted["rows"][0][0] > 0


def test_post_anomalies_scores_a_real_series_and_finds_a_spike(api):
    url, _, bars = api
    close = _bars(bars, "AAPL")["close"].tail(120).to_list()
    close[100] = close[99] * 1.5
    r = httpx.post(f"{url}/api/v1/anomalies", json={"values": close, "window": 30, "threshold": 4.0})
    body = r.json()
    assert r.status_code == 200 and 100 in body["anomalies"]
    assert body["points"][0]["score"] is None  # warm-up: no trailing window yet
    legacy = httpx.post(f"{url}/ml/anomalies", json={"symbol": "AAPL", "data": close}).json()
    assert 100 in legacy["anomalies"] and len(legacy["scores"]) == len(close)


def test_post_anomalies_with_package_detector_explains_the_spike(api):
    url, _, bars = api
    close = _bars(bars, "AAPL")["close"].tail(200).to_list()
    close[150] = close[149] * 1.4
    body = httpx.post(f"{url}/api/v1/anomalies", json={"values": close, "detector": "ewma", "window": 40,
                                                        "threshold": 6.0}).json()
    assert body["detector"] == "ewma" and 150 in body["anomalies"]
    r = httpx.post(f"{url}/api/v1/anomalies", json={"values": close, "detector": "magic"})
    assert r.status_code == 400 and "zscore" in r.json()["detail"]


def test_post_anomalies_store_needs_api_key_then_lists_them(api):
    url, _, bars = api
    aapl = _bars(bars, "AAPL").tail(80)
    values = aapl["close"].to_list()
    values[70] = values[69] * 0.6
    body = {"values": values, "timestamps": [t.isoformat() for t in aapl["ts"]], "symbol": "AAPL",
            "timeframe": "1d", "window": 30, "store": True}
    assert httpx.post(f"{url}/api/v1/anomalies", json=body).status_code == 401
    assert httpx.post(f"{url}/api/v1/anomalies", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
    r = httpx.post(f"{url}/api/v1/anomalies", json=body, headers={"X-API-Key": API_KEY})
    assert r.status_code == 200 and r.json()["stored"] >= 1
    listed = httpx.get(f"{url}/api/v1/anomalies", params={"symbol": "AAPL"}).json()
    assert any(row["ts"].startswith(aapl["ts"][70].date().isoformat()) for row in listed)
    used = listed[0]["detector"]
    assert httpx.get(f"{url}/api/v1/anomalies", params={"symbol": "AAPL", "detector": used}).json() == listed
    other = "classifier" if used != "classifier" else "zscore"
    assert httpx.get(f"{url}/api/v1/anomalies", params={"symbol": "AAPL", "detector": other}).json() == []
    assert httpx.get(f"{url}/api/v1/anomalies", params={"detector": "Not-One!"}).status_code == 422
    alerts = httpx.get(f"{url}/api/v1/alerts").json()
    assert any(a["symbol"] == "AAPL" and "sigma" in a["message"] for a in alerts)


def test_state_changing_route_refused_without_configured_key(filled):
    from tickwise.serve.runtime import start_services

    settings, warehouse, _ = filled
    keyless = settings.model_copy(update={"api_key": ""})
    with start_services(keyless, warehouse=warehouse, bus=None, dashboard=False, port=0) as handle:
        body = {"values": [1.0, 2.0, 3.0, 4.0], "timestamps": [f"2024-01-0{i}T00:00:00Z" for i in range(1, 5)],
                "symbol": "AAPL", "store": True}
        r = httpx.post(f"{handle.api_url}/api/v1/anomalies", json=body, headers={"X-API-Key": "anything"})
    assert r.status_code == 403 and "TICKWISE_API_KEY" in r.json()["detail"]


def test_health_stats_and_metrics_answer(api):
    url, _, bars = api
    health = httpx.get(f"{url}/api/v1/health").json()
    assert health["status"] == "ok" and health["symbols"] == bars["symbol"].n_unique()
    stats = httpx.get(f"{url}/api/v1/stats").json()
    assert stats["warehouse_bars"] == bars.height
    httpx.get(f"{url}/api/v1/bars/AAPL")
    text = httpx.get(f"{url}/metrics").text
    assert 'tickwise_api_request_duration_seconds_count{method="GET",route="/api/v1/bars/{symbol}"}' in text
    assert "tickwise_ticks_processed_total" in text


def test_openapi_schema_lists_every_route(api):
    url, _, _ = api
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    for path in ("/api/v1/symbols", "/api/v1/bars/{symbol}", "/api/v1/signals/{symbol}", "/api/v1/forecasts/{symbol}",
                 "/api/v1/anomalies", "/api/v1/query", "/api/v1/health", "/ml/predictions/{symbol}", "/ml/anomalies"):
        assert path in paths
    assert np.isfinite(len(paths))
