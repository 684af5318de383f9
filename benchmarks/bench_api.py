"""API load and WebSocket fan-out benchmark.

1. HTTP load: starts `tickwise up` (simulator feed, API, no dashboard) in a child process and
   sends requests from this process on a fixed open-loop schedule at ``--rate`` per second for
   ``--duration`` seconds, alternating "latest 100 bars of a symbol" and "latest forecast of a
   symbol", from a minimal asyncio-protocol HTTP/1.1 client on 127.0.0.1 over ``--concurrency``
   keep-alive connections. Latency runs from each request's due time to its last byte, so
   waiting for a free connection counts (``svc p99`` is send to last byte alone; a request the
   generator itself dispatched more than 5 ms late is counted as late). Reports p50/p99/p99.9/max
   latency, errors and the rate achieved.
2. WebSocket fan-out: runs the API in this process over a memory bus, connects
   ``--subscribers`` WebSocket clients (in a child process) to /api/v1/stream, publishes
   ``--bars`` closed-bar batches (10 symbols each, every 100 ms) and measures, per
   subscriber and bar, the time from publish to receipt (CLOCK_MONOTONIC, shared by both
   processes); reports p50/p99 and whether every subscriber got every bar.

Run: .venv/bin/python benchmarks/bench_api.py [--quick]
Writes artifacts/benchmarks/bench_api.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "artifacts" / "benchmarks" / "bench_api.json"
SYMBOLS = ["AAPL", "MSFT", "SPY", "GOOG", "AMZN", "TSLA", "NIFTY50", "USDINR", "BTCUSD", "EURUSD"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the load generator, one request at a time.

    A minimal client on asyncio's protocol callbacks: it must cost far less CPU than the
    server it measures (httpx's async client costs about as much as the API itself).
    """

    def __init__(self, load: _OpenLoop) -> None:
        self.load = load
        self.buffer = bytearray()
        self.due = 0.0
        self.sent = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes, due: float) -> None:
        self.due, self.sent = due, time.perf_counter()
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        self.load.done(self, ok=head.startswith(b"HTTP/1.1 200"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.lost(self)


class _OpenLoop:
    """Send requests on a fixed schedule (open loop) over a pool of connections.

    Latency is counted from each request's due time to its last byte, so time spent waiting
    for a free connection (queueing behind slow answers) counts, as a real client would see it.
    """

    def __init__(self, requests: list[bytes], *, rate: float, count: int) -> None:
        self.requests, self.rate, self.count = requests, rate, count
        self.idle: collections.deque[_Connection] = collections.deque()
        self.waiting: collections.deque[tuple[bytes, float]] = collections.deque()
        self.latencies: list[float] = []
        self.service: list[float] = []
        self.errors = 0
        self.late = 0
        self.finished = asyncio.get_running_loop().create_future()

    def dispatch(self, request: bytes, due: float) -> None:
        if self.idle:
            self.idle.popleft().send(request, due)
        else:
            self.waiting.append((request, due))

    def done(self, conn: _Connection, *, ok: bool) -> None:
        now = time.perf_counter()
        self.latencies.append(now - conn.due)
        self.service.append(now - conn.sent)
        self.errors += 0 if ok else 1
        if self.waiting:
            conn.send(*self.waiting.popleft())
        else:
            self.idle.append(conn)
        if len(self.latencies) == self.count and not self.finished.done():
            self.finished.set_result(None)

    def lost(self, conn: _Connection) -> None:
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)

    async def run(self, host: str, port: int, *, concurrency: int) -> float:
        loop = asyncio.get_running_loop()
        for _ in range(concurrency):
            _, conn = await loop.create_connection(lambda: _Connection(self), host, port)
            self.idle.append(conn)
        start = time.perf_counter()
        for i in range(self.count):
            due = start + i / self.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > 0.005:
                self.late += 1
            self.dispatch(self.requests[i % len(self.requests)], due)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.finished, timeout=30)
        for conn in list(self.idle):
            assert conn.transport is not None
            conn.transport.close()
        return time.perf_counter() - start


async def _load(base: str, *, rate: float, duration_s: float, concurrency: int) -> dict[str, float]:
    host, port = base.removeprefix("http://").split(":")
    paths = [f"/api/v1/bars/{s}?limit=100" for s in SYMBOLS[:3]] + [f"/api/v1/forecasts/{s}?limit=1" for s in SYMBOLS[:3]]
    requests = [f"GET {p} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() for p in paths]
    n = int(rate * duration_s)
    load = _OpenLoop(requests, rate=rate, count=n)
    elapsed = await load.run(host, int(port), concurrency=concurrency)
    ms = [x * 1000 for x in load.latencies]
    service = [x * 1000 for x in load.service]
    return {"requests": n, "answered": len(ms), "errors": load.errors + n - len(ms), "late_starts": load.late,
            "achieved_rps": len(ms) / elapsed, "p50_ms": _pct(ms, 50), "p99_ms": _pct(ms, 99),
            "p999_ms": _pct(ms, 99.9), "max_ms": max(ms) if ms else float("nan"),
            "service_p50_ms": _pct(service, 50), "service_p99_ms": _pct(service, 99)}


def _run_async(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def http_load(*, rate: float, duration_s: float, concurrency: int) -> dict[str, float]:
    data = tempfile.mkdtemp(prefix="tw-bench-")
    port = _free_port()
    env = dict(os.environ, TICKWISE_DATA_DIR=data, TICKWISE_API_PORT=str(port), TICKWISE_DASHBOARD_PORT=str(_free_port()))
    exe = Path(sys.executable).with_name("tickwise")
    proc = subprocess.Popen([str(exe), "up", "--no-dashboard", "--duration", str(duration_s + 60)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=data)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/v1/bars/AAPL?limit=1").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("tickwise up did not serve bars within 60 s")
        time.sleep(2)
        return _run_async(_load(base, rate=rate, duration_s=duration_s, concurrency=concurrency))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ws_clients(url: str, subscribers: int, want: int, out: str) -> None:
    """Child process: hold ``subscribers`` WebSocket clients, record when each bar arrives."""
    import gc

    from websockets.asyncio.client import connect

    # the harness keeps every arrival time (100k tracked tuples): its own full collections
    # would stall all clients at once and be measured as the server's latency
    gc.disable()
    received: list[list[tuple[str, float]]] = [[] for _ in range(subscribers)]

    async def one(i: int, ready: list[int]) -> None:
        async with connect(url, max_queue=None) as ws:
            await ws.recv()
            ready[0] += 1
            if ready[0] == subscribers:
                print("ready", flush=True)
            while len(received[i]) < want:
                try:
                    text = await asyncio.wait_for(ws.recv(), timeout=15)
                except TimeoutError:
                    return
                now = time.monotonic()
                for event in json.loads(text):
                    received[i].append((event["data"]["symbol"] + "@" + event["data"]["ts"], now))

    async def run() -> None:
        ready = [0]
        await asyncio.gather(*(one(i, ready) for i in range(subscribers)))

    asyncio.run(run())
    Path(out).write_text(json.dumps(received))


def fanout(*, subscribers: int, bars: int, interval_s: float) -> dict[str, float]:
    import datetime as dt

    import polars as pl

    from tickwise.app import build_warehouse
    from tickwise.bus.base import bars_topic
    from tickwise.bus.memory import MemoryBus
    from tickwise.codec import encode_table
    from tickwise.config import load_settings
    from tickwise.domain import BAR_SCHEMA
    from tickwise.serve.runtime import start_services

    settings = load_settings(data_dir=tempfile.mkdtemp(prefix="tw-fanout-"), timeframes=["1s"])
    warehouse = build_warehouse(settings)
    bus = MemoryBus(partitions=1, capacity=4096)
    handle = start_services(settings, warehouse=warehouse, bus=bus, dashboard=False, port=0)
    sent: dict[str, float] = {}
    out = Path(tempfile.mkdtemp(prefix="tw-fanout-")) / "received.json"
    url = handle.api_url.replace("http", "ws") + "/api/v1/stream?kinds=bar&timeframes=1s"
    want = bars * len(SYMBOLS)
    children0 = _children_cpu_s()
    child = subprocess.Popen([sys.executable, __file__, "--ws-client", url, str(subscribers), str(want), str(out)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise SystemExit("WebSocket clients did not connect")
        start = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
        cpu0 = time.process_time()
        for k in range(bars):
            ts = start + dt.timedelta(seconds=k)
            frame = pl.DataFrame({
                "symbol": SYMBOLS, "timeframe": "1s", "ts": [ts] * len(SYMBOLS), "open": 100.0, "high": 101.0,
                "low": 99.0, "close": 100.5, "volume": 1000.0, "trades": 10, "vwap": 100.2,
            }).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
            stamp = ts.strftime("%Y-%m-%dT%H:%M:%SZ")
            now = time.monotonic()
            for s in SYMBOLS:
                sent[f"{s}@{stamp}"] = now
            bus.publish(bars_topic("1s"), [encode_table(frame.to_arrow().cast(BAR_SCHEMA))])
            time.sleep(interval_s)
        server_cpu_s = time.process_time() - cpu0  # the publisher's share is small next to the API's
        child.wait(timeout=120)
        client_cpu_s = _children_cpu_s() - children0
    finally:
        if child.poll() is None:
            child.kill()
        handle.stop()
        warehouse.close()
    received = json.loads(out.read_text()) if out.exists() else []
    latencies = [(t - sent[key]) * 1000 for events in received for key, t in events if key in sent]
    complete = sum(1 for events in received if len(events) == want)
    return {"subscribers": subscribers, "bar_batches": bars, "events_per_subscriber": want,
            "subscribers_complete": complete, "p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99),
            "max_ms": max(latencies) if latencies else float("nan"),
            "server_cpu_ms_per_batch": server_cpu_s * 1000 / bars, "clients_cpu_ms_per_batch": client_cpu_s * 1000 / bars}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--ws-client":
        _ws_clients(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s of load and 20 bar batches")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--bars", type=int, default=100)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-ws", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.bars = 5.0, 20
    result: dict[str, object] = {"cpus": os.cpu_count()}
    if not args.skip_http:
        result["http"] = http_load(rate=args.rate, duration_s=args.duration, concurrency=args.concurrency)
        h = result["http"]
        print(f"{'HTTP load':<22}{'rate/s':>9}{'achieved':>10}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}{'max ms':>9}"
              f"{'svc p99':>9}{'errors':>8}{'late':>7}")
        print(f"{'bars+forecast':<22}{args.rate:>9.0f}{h['achieved_rps']:>10.0f}{h['p50_ms']:>9.2f}{h['p99_ms']:>9.2f}"
              f"{h['p999_ms']:>10.2f}{h['max_ms']:>9.1f}{h['service_p99_ms']:>9.2f}{h['errors']:>8}{h['late_starts']:>7}")
    if not args.skip_ws:
        result["websocket"] = fanout(subscribers=args.subscribers, bars=args.bars, interval_s=0.1)
        w = result["websocket"]
        print(f"{'WS fan-out':<22}{'subs':>9}{'complete':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
              f"{'srv cpu':>9}{'cli cpu':>9}")
        print(f"{'closed bars':<22}{w['subscribers']:>9}{w['subscribers_complete']:>10}{w['p50_ms']:>9.2f}"
              f"{w['p99_ms']:>9.2f}{w['max_ms']:>9.1f}{w['server_cpu_ms_per_batch']:>9.2f}{w['clients_cpu_ms_per_batch']:>9.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
