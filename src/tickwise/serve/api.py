"""The FastAPI application: REST under ``/api/v1``, the live WebSocket stream, ``/metrics``.

Build it with `create_app`; `tickwise serve` runs it under uvicorn, and `tickwise up` runs
it in a background thread sharing the pipeline's warehouse (DuckDB allows one writer
process, so the API in `up` must use the same `Warehouse` object).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tickwise import __version__, metrics
from tickwise.bus.base import Bus
from tickwise.config import Settings
from tickwise.exceptions import BackendError, InputError, NotFoundError, TickwiseError
from tickwise.serve.cache import ResponseCache, current_request
from tickwise.serve.records import TableReader, check_symbol, warm_up
from tickwise.serve.stream import KINDS, StreamHub
from tickwise.store.base import Warehouse
from tickwise.timeframes import timeframe_ns

_encoder = msgspec.json.Encoder(enc_hook=str)


def encode(value: Any) -> bytes:
    """Encode a response body as JSON (datetimes as RFC 3339, unknown types as strings)."""
    return _encoder.encode(value)


class _FrontDoor:
    """Outermost ASGI middleware: answers repeated read requests from the cache, times all.

    A GET whose exact path and query string were answered before from `ResponseCache` is
    answered here with the cached bytes, skipping routing, parameter validation and the
    rest of the middleware stack (the same request always maps to the same validated
    key). Every HTTP request's latency and status are recorded per route template.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], *, cache: ResponseCache) -> None:
        self.app = app
        self.cache = cache
        self._observers: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _record(self, route: str, method: str, status: int, seconds: float) -> None:
        observers = self._observers.get((route, method, status))
        if observers is None:
            observers = (metrics.API_LATENCY.labels(route, method),
                         metrics.API_REQUESTS.labels(route, method, f"{status // 100}xx"))
            self._observers[(route, method, status)] = observers
        observers[0].observe(seconds)
        observers[1].inc()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope.get("method", "GET")
        noted: dict[str, Any] | None = None
        token = None
        if method == "GET":
            request = (scope["path"], scope["query_string"])
            hit = self.cache.lookup(request)
            if hit is not None:
                body, route = hit
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                self._record(route, method, 200, time.perf_counter() - started)
                return
            noted = {"key": None}
            token = current_request.set(noted)
        status = [500]

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            if token is not None:
                current_request.reset(token)
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            if noted is not None and noted["key"] is not None and status[0] == 200:
                self.cache.remember((scope["path"], scope["query_string"]), noted["key"], route)
            self._record(route, method, status[0], time.perf_counter() - started)


class ServeState:
    """What the routes share: settings, warehouse, table reader, stream hub, caches."""

    def __init__(self, settings: Settings, warehouse: Warehouse, bus: Bus | None, *, cache_ttl_s: float,
                 problems: Callable[[], list[str]] | None = None) -> None:
        self.settings = settings
        #: parts of the pipeline in this process that have stopped (`tickwise up`), for /health
        self.problems = problems or list
        self.warehouse = warehouse
        self.bus = bus
        self.reader = TableReader(warehouse)
        self.cache = ResponseCache(ttl_s=cache_ttl_s)
        self.hub = StreamHub(bus, timeframes=settings.timeframes) if bus is not None else None
        self.started = time.monotonic()
        self.app_version = __version__
        self._catalog: tuple[float, list[dict[str, Any]]] = (-1e9, [])

    def catalog(self) -> list[dict[str, Any]]:
        """Return one row per (symbol, timeframe) with bar count and range (cached 2 s)."""
        read_at, rows = self._catalog
        if time.monotonic() - read_at < 2.0:
            return rows
        table = self.warehouse.query(
            "SELECT symbol, timeframe, count(*) AS bars, min(ts) AS first_ts, max(ts) AS last_ts "
            "FROM bars GROUP BY symbol, timeframe ORDER BY symbol, timeframe"
        )
        rows = table.to_pylist()
        self._catalog = (time.monotonic(), rows)
        return rows

    def symbols(self) -> list[str]:
        return sorted({r["symbol"] for r in self.catalog()})

    def timeframe_for(self, symbol: str, timeframe: str | None) -> str:
        """Check an interval, or pick the shortest one the symbol has bars in."""
        if timeframe is not None:
            timeframe_ns(timeframe)
            return timeframe
        have = [r["timeframe"] for r in self.catalog() if r["symbol"] == symbol]
        if have:
            return min(have, key=timeframe_ns)
        return self.settings.timeframes[0]

    def require_symbol(self, symbol: str) -> None:
        if symbol not in self.symbols():
            self._catalog = (-1e9, [])  # a new symbol may just have arrived
            if symbol not in self.symbols():
                known = ", ".join(self.symbols()[:20]) or "none yet"
                raise NotFoundError(f"symbol must be one with bars ({known}), was {symbol!r}")


def _error(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handler


def create_app(settings: Settings, *, warehouse: Warehouse, bus: Bus | None = None,
               cache_ttl_s: float = 0.25, problems: Callable[[], list[str]] | None = None) -> FastAPI:
    """Build the API over a warehouse and (optionally) a bus for the live stream.

    Parameters
    ----------
    settings
        ``api_key`` guards the routes that change state; ``timeframes`` are streamed.
    warehouse
        Read for bars and analytics; shared with the pipeline inside `tickwise up`.
    bus
        Read as a viewer (``read_latest``) for ``/api/v1/stream``; None disables the stream.
    cache_ttl_s
        How long answers of the "latest" read routes are reused (0 turns the cache off).
    problems
        Says which parts of the pipeline running beside the API have stopped (`tickwise up`'s
        stage threads); ``/health`` then answers ``degraded`` with them as its detail.

    Examples
    --------
    >>> import tempfile
    >>> from tickwise.config import load_settings
    >>> from tickwise.app import build_warehouse
    >>> s = load_settings(data_dir=tempfile.mkdtemp())
    >>> app = create_app(s, warehouse=build_warehouse(s))
    >>> "/api/v1/bars/{symbol}" in app.openapi()["paths"]
    True
    """
    from tickwise.serve.routes import compat_router, data_router

    state = ServeState(settings, warehouse, bus, cache_ttl_s=cache_ttl_s, problems=problems)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warm_up()
        if state.hub is not None:
            state.hub.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            if state.hub is not None:
                state.hub.stop()

    app = FastAPI(
        title="tickwise",
        version=__version__,
        summary="Bars, signals, forecasts and anomalies: latest, by range, and live.",
        description=(
            "Read routes need no key. Routes that change state need the header `X-API-Key` "
            "equal to the `TICKWISE_API_KEY` setting. Times are UTC (RFC 3339); a bar is "
            "labelled by the start of its window. The live stream is a WebSocket at "
            "`/api/v1/stream?symbols=AAPL,MSFT&timeframes=1s&kinds=bar,forecast`: a `hello` "
            "object, then messages that are JSON arrays of events such as "
            "`{\"type\": \"bar\", \"topic\": \"bars.1s\", \"data\": {...}}`."
        ),
        lifespan=lifespan,
    )
    app.state.serve = state
    app.add_exception_handler(NotFoundError, _error(404))
    app.add_exception_handler(InputError, _error(400))
    app.add_exception_handler(BackendError, _error(503))
    app.add_exception_handler(TickwiseError, _error(400))
    app.add_middleware(_FrontDoor, cache=state.cache)  # type: ignore[arg-type]
    app.include_router(data_router(state))
    app.include_router(compat_router(state))

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.websocket("/api/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        params = websocket.query_params
        try:
            symbols = [check_symbol(s) for s in _csv(params.get("symbols"))]
            timeframes = _csv(params.get("timeframes"))
            for tf in timeframes:
                timeframe_ns(tf)
            kinds = _csv(params.get("kinds")) or list(KINDS)
            bad = [k for k in kinds if k not in KINDS]
            if bad:
                raise InputError(f"kinds must be among {', '.join(KINDS)}, was {','.join(bad)}")
            if state.hub is None:
                raise InputError("the live stream needs a bus; this API was started without one")
        except InputError as exc:
            await websocket.send_json({"type": "error", "detail": str(exc)})
            await websocket.close(code=1008)
            return
        sub = state.hub.subscribe(symbols=symbols, timeframes=timeframes, kinds=kinds)
        await websocket.send_json({"type": "hello", "symbols": symbols, "timeframes": timeframes, "kinds": kinds})

        async def watch_close() -> None:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        break
            sub.queue.put_nowait(None)

        watcher = asyncio.create_task(watch_close())
        try:
            while True:
                text = await sub.queue.get()
                if text is None:
                    break
                await websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            state.hub.unsubscribe(sub)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await websocket.close()

    return app


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]
