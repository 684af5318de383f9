"""The REST routes: ``/api/v1/...`` and the older service's ``/ml/...`` compatibility routes."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import secrets
import time
from typing import Annotated, Any

import numpy as np
import polars as pl
import pyarrow as pa
from fastapi import APIRouter, Header, HTTPException, Path, Query
from fastapi.responses import Response
from prometheus_client import REGISTRY

from tickwise.exceptions import InputError, NotFoundError
from tickwise.serve import schemas
from tickwise.serve.accuracy import score_forecasts
from tickwise.serve.api import ServeState, encode
from tickwise.serve.records import SYMBOL_PATTERN, check_symbol, to_ns, to_records
from tickwise.serve.scoring import score_series
from tickwise.serve.sqlcheck import check_read_only_sql
from tickwise.store.base import TABLES
from tickwise.timeframes import timeframe_ns

Symbol = Annotated[str, Path(pattern=SYMBOL_PATTERN, description="instrument, e.g. AAPL")]
Timeframe = Annotated[str | None, Query(max_length=8, description="1s, 1m, 5m, 1h, 1d...; default: the symbol's shortest")]
Limit = Annotated[int, Query(ge=1, le=10_000, description="newest rows to return, oldest first")]
Start = Annotated[dt.datetime | None, Query(description="first time included (UTC; RFC 3339 or Unix seconds)")]
End = Annotated[dt.datetime | None, Query(description="first time excluded")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.ErrorOut, "description": "bad parameter"},
    404: {"model": schemas.ErrorOut, "description": "unknown symbol"},
    503: {"model": schemas.ErrorOut, "description": "warehouse unavailable"},
}


def _json(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")


def _require_api_key(state: ServeState, key: str | None) -> None:
    expected = state.settings.api_key
    if not expected:
        raise HTTPException(403, "routes that change state are disabled: set TICKWISE_API_KEY to enable them")
    if key is None or not secrets.compare_digest(key.encode(), expected.encode()):
        raise HTTPException(401, "header X-API-Key must hold the configured API key, was missing or wrong")


def data_router(state: ServeState) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=_ERRORS)
    reader = state.reader

    async def cached(key: tuple[Any, ...], build: Any) -> Response:
        # a hit is answered on the event loop; a miss reads the warehouse in the thread pool
        return _json(await state.cache.fetch(key, lambda: encode(build())))

    async def series_rows(table: str, symbol: str, timeframe: str | None, start: dt.datetime | None,
                          end: dt.datetime | None, limit: int) -> Response:
        check_symbol(symbol)
        start_ns, end_ns = to_ns(start), to_ns(end)
        if timeframe is not None:
            timeframe_ns(timeframe)
        key = (table, symbol, timeframe, start_ns, end_ns, limit)
        return await cached(key, lambda: reader.rows(table, symbol=symbol, timeframe=timeframe,
                                                     start_ns=start_ns, end_ns=end_ns, limit=limit))

    @router.get("/health", response_model=schemas.HealthOut, tags=["status"])
    def health() -> Response:
        """Say whether the API can read the warehouse (503 when not) and whether every part of
        the pipeline running beside it is alive (``degraded`` with the reason when one stopped)."""
        body: dict[str, Any] = {
            "status": "ok",
            "version": state.app_version,
            "warehouse": state.warehouse.url.split(":", 1)[0],
            "bus": state.bus.url.split(":", 1)[0] if state.bus is not None else "none",
            "timeframes": state.settings.timeframes,
            "symbols": 0,
            "uptime_s": round(time.monotonic() - state.started, 3),
            "detail": None,
        }
        try:
            body["symbols"] = len(state.symbols())
        except Exception as exc:  # health must answer whatever the warehouse does
            body.update(status="degraded", detail=f"warehouse did not answer: {exc}")
            return Response(encode(body), status_code=503, media_type="application/json")
        stopped = state.problems()
        if stopped:  # the API still answers; part of the pipeline does not run
            body.update(status="degraded", detail="; ".join(stopped))
        return _json(encode(body))

    @router.get("/symbols", response_model=schemas.SymbolsOut, tags=["data"])
    def symbols() -> Response:
        """List the symbols that have bars."""
        return _json(encode({"symbols": state.symbols()}))

    @router.get("/series", response_model=list[dict[str, Any]], tags=["data"])
    def series() -> Response:
        """List each (symbol, timeframe) with its bar count and first and last bar time."""
        return _json(encode(state.catalog()))

    @router.get("/bars/{symbol}", response_model=list[schemas.BarOut], tags=["data"])
    async def bars(symbol: Symbol, timeframe: Timeframe = None, start: Start = None, end: End = None,
                   limit: Limit = 500) -> Response:
        """Return the newest ``limit`` bars of a symbol in ``[start, end)``, oldest first."""
        start_ns, end_ns = to_ns(start), to_ns(end)

        def build() -> list[dict[str, Any]]:
            tf = state.timeframe_for(symbol, timeframe)
            table = state.warehouse.bars(symbol, tf, start_ts=start_ns, end_ts=end_ns, last=limit)
            if table.num_rows == 0:
                state.require_symbol(symbol)
            return to_records(table)

        return await cached(("bars", symbol, timeframe, start_ns, end_ns, limit), build)

    @router.get("/signals/{symbol}", response_model=list[schemas.RowOut], tags=["analytics"])
    async def signals(symbol: Symbol, timeframe: Timeframe = None, start: Start = None, end: End = None,
                      limit: Limit = 100) -> Response:
        """Return the newest buy/sell/hold signals of a symbol (empty until a rule has run)."""
        return await series_rows("signals", symbol, timeframe, start, end, limit)

    @router.get("/forecasts/{symbol}", response_model=list[schemas.RowOut], tags=["analytics"])
    async def forecasts(symbol: Symbol, timeframe: Timeframe = None, start: Start = None, end: End = None,
                        limit: Limit = 100) -> Response:
        """Return the newest next-bar forecasts of a symbol, with their intervals."""
        return await series_rows("forecasts", symbol, timeframe, start, end, limit)

    @router.get("/anomalies", response_model=list[schemas.RowOut], tags=["analytics"])
    async def anomalies(symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN)] = None,
                        timeframe: Timeframe = None, start: Start = None, end: End = None,
                        limit: Limit = 100,
                        detector: Annotated[str | None, Query(pattern=r"^[a-z]{1,16}$", description=(
                            "only this detector's, e.g. classifier"))] = None) -> Response:
        """Return the newest anomalies, of one symbol or all (of one detector or all)."""
        start_ns, end_ns = to_ns(start), to_ns(end)
        key = ("anomalies", symbol, timeframe, start_ns, end_ns, limit, detector)
        return await cached(key, lambda: reader.rows("anomalies", symbol=symbol, timeframe=timeframe,
                                               start_ns=start_ns, end_ns=end_ns, limit=limit,
                                               where={} if detector is None else {"detector": detector}))

    @router.post("/anomalies", response_model=schemas.ScoreOut, tags=["analytics"],
                 responses={401: {"model": schemas.ErrorOut}, 403: {"model": schemas.ErrorOut}})
    def score(body: schemas.ScoreIn,
              x_api_key: Annotated[str | None, Header(description="needed with store=true")] = None) -> Response:
        """Score a series for anomalies; with ``store`` (and the API key), keep what is found."""
        if body.store:
            _require_api_key(state, x_api_key)
        if body.timestamps is not None and len(body.timestamps) != len(body.values):
            raise InputError(f"timestamps must have one entry per value ({len(body.values)}), was {len(body.timestamps)}")
        if body.symbol is not None:
            check_symbol(body.symbol)
        result = score_series(body.values, detector=body.detector, window=body.window, threshold=body.threshold)
        flags = result.is_anomaly
        points = []
        for i, value in enumerate(body.values):
            s = float(result.scores[i])
            points.append({
                "index": i,
                "ts": body.timestamps[i] if body.timestamps is not None else None,
                "value": value,
                "score": s if np.isfinite(s) else None,
                "is_anomaly": bool(flags[i]),
            })
        found = [int(i) for i in np.flatnonzero(flags)]
        stored = _store_anomalies(state, body, result, found) if body.store else 0
        return _json(encode({"detector": result.detector, "threshold": result.threshold,
                             "points": points, "anomalies": found, "stored": stored}))

    @router.get("/query", response_model=schemas.QueryOut, tags=["data"])
    def query(sql: Annotated[str, Query(min_length=1, max_length=20_000, description="one read-only statement")],
              max_rows: Annotated[int, Query(ge=1, le=100_000)] = 1000,
              timeout_s: Annotated[float, Query(gt=0, le=60)] = 10.0) -> Response:
        """Run one read-only SQL statement on the warehouse's tables, with a row and time limit.

        Files, other databases, settings and the environment are out of reach: table
        functions such as ``read_csv`` or ``glob``, ``FROM 'file.csv'``, ``COPY`` and
        ``ATTACH`` are refused with a 400.
        """
        return _run_query(state, sql, max_rows=max_rows, timeout_s=timeout_s)

    @router.post("/query", response_model=schemas.QueryOut, tags=["data"])
    def query_post(body: schemas.QueryIn) -> Response:
        """Run one read-only SQL statement sent as JSON (same rules as ``GET /query``)."""
        return _run_query(state, body.sql, max_rows=body.max_rows, timeout_s=body.timeout_s)

    @router.get("/accuracy/{symbol}", response_model=schemas.AccuracyOut, tags=["analytics"])
    async def accuracy(symbol: Symbol, timeframe: Timeframe = None,
                       window: Annotated[int, Query(ge=2, le=5000)] = 200) -> Response:
        """Compare the latest forecasts with the bars that closed, and with the random walk."""

        def build() -> dict[str, Any]:
            tf = state.timeframe_for(symbol, timeframe)
            fc = reader.table("forecasts", symbol=symbol, timeframe=tf, limit=window * 4)
            if fc.num_rows == 0 or "close" not in fc.column_names:
                return {"symbol": symbol, "timeframe": tf, "models": []}
            bars = state.warehouse.bars(symbol, tf, last=window + 1)
            models = score_forecasts(_frame(bars), _frame(fc))
            return {"symbol": symbol, "timeframe": tf, "models": models}

        return await cached(("accuracy", symbol, timeframe, window), build)

    @router.get("/stats", response_model=schemas.StatsOut, tags=["status"])
    async def stats() -> Response:
        """Pipeline health: ticks/s, bus lag, dead letters, bar latency, warehouse totals."""
        return await cached(("stats",), lambda: _stats(state))

    @router.get("/alerts", response_model=list[schemas.AlertOut], tags=["status"])
    async def alerts(limit: Limit = 50) -> Response:
        """Return recent alerts: anomalies found and pipeline conditions worth a look."""
        return await cached(("alerts", limit), lambda: _alerts(state, limit))

    return router


def compat_router(state: ServeState) -> APIRouter:
    router = APIRouter(prefix="/ml", tags=["compatibility"], responses=_ERRORS)

    @router.get("/predictions/{symbol}", response_model=schemas.PredictionOut)
    async def prediction(symbol: Symbol, timeframe: Timeframe = None) -> Response:
        """The older service's prediction: the latest forecast's close and a confidence."""

        def build() -> bytes:
            tf = state.timeframe_for(symbol, timeframe) if timeframe else None
            rows = state.reader.rows("forecasts", symbol=symbol, timeframe=tf, limit=1)
            if not rows or not isinstance(rows[-1].get("close"), float | int):
                state.require_symbol(symbol)
                raise NotFoundError(f"a forecast for {symbol} must exist, was none yet (is forecasting running?)")
            return encode(_prediction(rows[-1]))

        return _json(await state.cache.fetch(("prediction", symbol, timeframe), build))

    @router.post("/anomalies", response_model=schemas.LegacyAnomaliesOut)
    def legacy_anomalies(body: schemas.LegacyAnomaliesIn) -> Response:
        """The older service's anomaly check: indexes of anomalous points in ``data``."""
        if body.symbol is not None:
            check_symbol(body.symbol)
        result = score_series(body.data, detector="zscore", window=min(20, max(3, len(body.data) // 3)),
                              threshold=body.threshold)
        scores = [float(s) if np.isfinite(s) else None for s in result.scores]
        return _json(encode({"symbol": body.symbol, "anomalies": [int(i) for i in np.flatnonzero(result.is_anomaly)],
                             "scores": scores}))

    return router


def _run_query(state: ServeState, sql: str, *, max_rows: int, timeout_s: float) -> Response:
    check_read_only_sql(sql)
    table = state.warehouse.query(sql, max_rows=max_rows + 1, timeout_s=timeout_s)
    truncated = table.num_rows > max_rows
    table = table.slice(0, max_rows)
    rows = [list(r.values()) for r in to_records(table)]
    return _json(encode({"columns": table.column_names, "rows": rows, "row_count": len(rows),
                         "truncated": truncated}))


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _prediction(row: dict[str, Any]) -> dict[str, Any]:
    close = float(row["close"])
    lo, hi = row.get("lo_80"), row.get("hi_80")
    if isinstance(lo, float | int) and isinstance(hi, float | int) and close > 0:
        confidence = min(1.0, max(0.0, 1.0 - (float(hi) - float(lo)) / 2.0 / close))
    else:
        confidence = 0.0
    return {
        "symbol": row.get("symbol"), "timeframe": row.get("timeframe"), "ts": row.get("ts"),
        "predicted_price": close, "confidence": confidence,
        "lower_80": lo, "upper_80": hi, "lower_95": row.get("lo_95"), "upper_95": row.get("hi_95"),
        "model": row.get("model"),
    }


def _store_anomalies(state: ServeState, body: Any, result: Any, found: list[int]) -> int:
    if body.symbol is None or body.timestamps is None:
        raise InputError("store=true needs a symbol and one timestamp per value, was missing")
    for module in ("tickwise.anomaly.tables", "tickwise.anomaly.stage"):
        if "anomalies" in TABLES:
            break
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    if "anomalies" not in TABLES:
        raise HTTPException(503, "the anomalies table is not declared here (tickwise.anomaly is not installed)")
    if not found:
        return 0
    ts = [body.timestamps[i] if body.timestamps[i].tzinfo else body.timestamps[i].replace(tzinfo=dt.UTC)
          for i in found]
    table = pa.table({
        "symbol": [body.symbol] * len(found),
        "timeframe": [body.timeframe] * len(found),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "detector": [result.detector] * len(found),
        "score": [float(result.scores[i]) if np.isfinite(result.scores[i]) else 1e9 for i in found],
        "threshold": [float(result.threshold)] * len(found),
        "kind": ["api"] * len(found),
        "explanation": [result.explanations[i] for i in found],
    })
    spec = TABLES["anomalies"]
    state.warehouse.upsert("anomalies", table.select([c for c in table.column_names if c in spec.column_names]))
    return len(found)


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _by_label(metric_name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in REGISTRY.collect():
        if family.name != metric_name:
            continue
        for s in family.samples:
            if s.name.endswith("_total") or s.name == metric_name:
                key = s.labels.get(label, "")
                out[key] = out.get(key, 0.0) + s.value
    return out


def _bar_latency_p99() -> float | None:
    buckets: list[tuple[float, float]] = []
    for family in REGISTRY.collect():
        if family.name == "tickwise_bar_latency_seconds":
            buckets = [(float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket")]
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    for le, count in buckets:
        if count >= 0.99 * total:
            return le if np.isfinite(le) else None
    return None


def _stats(state: ServeState) -> dict[str, Any]:
    wh = state.warehouse.query(
        "SELECT (SELECT count(*) FROM bars) AS bars, (SELECT count(*) FROM deadletter) AS dl, "
        "(SELECT max(ts) FROM bars) AS latest"
    ).to_pylist()[0]
    last_tick = _sample("tickwise_last_tick_timestamp_seconds")
    lag: dict[str, float] = {}
    for family in REGISTRY.collect():
        if family.name == "tickwise_bus_lag_entries":
            for s in family.samples:
                lag[f"{s.labels.get('topic')}/{s.labels.get('group')}"] = s.value
    deadletters = _by_label("tickwise_deadletters", "reason")
    return {
        "ticks_total": _sample("tickwise_ticks_processed_total"),
        "ticks_per_s": round(state.hub.rates.ticks_per_s, 1) if state.hub is not None else 0.0,
        "last_tick_age_s": round(time.time() - last_tick, 3) if last_tick > 0 else None,
        "bus_lag": lag,
        "deadletters": deadletters,
        "deadletters_total": sum(deadletters.values()),
        "bars_written": _by_label("tickwise_bars_written", "timeframe"),
        "bar_latency_p99_s": _bar_latency_p99(),
        "stream_subscribers": state.hub.subscribers if state.hub is not None else 0,
        "warehouse_bars": int(wh["bars"] or 0),
        "warehouse_deadletters": int(wh["dl"] or 0),
        "latest_bar_ts": wh["latest"],
    }


def _alerts(state: ServeState, limit: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    now = dt.datetime.now(dt.UTC)
    stats = _stats(state)
    if stats["last_tick_age_s"] is not None and stats["last_tick_age_s"] > 30:
        out.append({"ts": now, "severity": "critical", "source": "pipeline", "symbol": None,
                    "message": f"feed silent: no tick for {stats['last_tick_age_s']:.0f} s"})
    if stats["deadletters_total"] > 0:
        reasons = ", ".join(f"{k or '?'} {int(v)}" for k, v in sorted(stats["deadletters"].items()))
        out.append({"ts": now, "severity": "warning", "source": "pipeline", "symbol": None,
                    "message": f"{int(stats['deadletters_total'])} dead letters ({reasons})"})
    for row in reversed(state.reader.rows("anomalies", limit=limit)):
        detail = row.get("explanation") or row.get("kind") or "anomaly"
        score = row.get("score")
        score_text = f" (score {score:.2f})" if isinstance(score, float) else ""
        out.append({"ts": row.get("ts"), "severity": "warning", "source": str(row.get("detector") or "anomaly"),
                    "symbol": row.get("symbol"), "message": f"{detail}{score_text}"})
    return out[:limit]
