"""A newline-delimited JSON tick feed over TCP: a server that streams, a client that ingests.

Wire format: one JSON object per line, UTF-8, ``\\n``-terminated::

    {"symbol": "AAPL", "ts": 1732147200123456789, "price": 228.41, "size": 100, "id": "AAPL-17"}

``ts`` is UTC nanoseconds since the epoch (an ISO 8601 string with a zone is accepted
too); ``id`` is optional and used to drop duplicates. Anything else on a line is ignored.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator

import polars as pl

from tickwise.exceptions import InputError
from tickwise.pipeline.validate import decode_lines

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 1 << 16


def ticks_to_lines(ticks: pl.DataFrame) -> bytes:
    """Encode tick columns as NDJSON lines (``ts_event`` is written as ``ts``).

    Examples
    --------
    >>> ticks_to_lines(pl.DataFrame({"symbol": ["A"], "ts_event": [5], "price": [1.5], "size": [2.0], "id": ["A-1"]}))
    b'{"symbol":"A","ts":5,"price":1.5,"size":2.0,"id":"A-1"}\\n'
    """
    if ticks.height == 0:
        return b""
    return ticks.select("symbol", pl.col("ts_event").alias("ts"), "price", "size", "id").write_ndjson().encode()


def parse_tcp_url(url: str) -> tuple[str, int]:
    """Split ``tcp://HOST:PORT``.

    Examples
    --------
    >>> parse_tcp_url("tcp://127.0.0.1:9009")
    ('127.0.0.1', 9009)
    """
    if not url.startswith("tcp://") or ":" not in url[6:]:
        raise InputError(f"source must look like tcp://HOST:PORT, was {url!r}")
    host, _, port = url[6:].rpartition(":")
    if not port.isdigit():
        raise InputError(f"source port must be a number, was {url!r}")
    return host, int(port)


class FeedServer:
    """Stream ticks from a generator of frames to every connected TCP client.

    A client that cannot keep up (its queue of ``max_queue`` chunks is full) is
    disconnected with a log line rather than slowing everyone down; it can reconnect.
    """

    def __init__(self, batches: Iterator[pl.DataFrame], *, host: str = "127.0.0.1", port: int = 9009,
                 max_queue: int = 1000) -> None:
        self.batches = batches
        self.host, self.port = host, port
        self.max_queue = max_queue
        self.clients: set[asyncio.Queue[bytes | None]] = set()
        self.sent_ticks = 0
        self._server: asyncio.base_events.Server | None = None
        self.ready = threading.Event()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(self.max_queue)
        self.clients.add(queue)
        peer = writer.get_extra_info("peername")
        log.info("feed client connected: %s", peer)
        try:
            while (chunk := await queue.get()) is not None:
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.clients.discard(queue)
            writer.close()
            log.info("feed client gone: %s", peer)

    async def _pump(self, stop: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            frame = await loop.run_in_executor(None, next, self.batches, None)
            if frame is None:
                break
            chunk = ticks_to_lines(frame)
            if not chunk:
                continue
            for queue in list(self.clients):
                try:
                    queue.put_nowait(chunk)
                except asyncio.QueueFull:
                    log.warning("feed client too slow; disconnecting it")
                    self.clients.discard(queue)
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(None)
            self.sent_ticks += frame.height
        for queue in list(self.clients):
            await queue.put(None)

    async def serve(self, stop: threading.Event) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.ready.set()
        async with self._server:
            pump = asyncio.create_task(self._pump(stop))
            while not stop.is_set() and not pump.done():
                await asyncio.sleep(0.05)
            pump.cancel()
            self._server.close()

    def run(self, stop: threading.Event) -> None:
        asyncio.run(self.serve(stop))


class FeedClient:
    """Read a TCP tick feed, decode it in batches, and hand ticks and dead letters on.

    Reconnects with exponential backoff (capped, with jitter) whenever the server goes away.
    """

    def __init__(
        self,
        url: str,
        on_batch: Callable[[pl.DataFrame, pl.DataFrame], None],
        *,
        batch_ms: int = 50,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.host, self.port = parse_tcp_url(url)
        self.url = url
        self.on_batch = on_batch
        self.batch_s = batch_ms / 1000
        self.max_backoff_s = max_backoff_s
        self.connects = 0
        self.lines = 0

    def _flush(self, lines: list[bytes]) -> None:
        if lines:
            ticks, dead = decode_lines(lines, source=self.url)
            self.on_batch(ticks, dead)
            self.lines += len(lines)

    def run(self, stop: threading.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=2.0)
            except OSError as exc:
                log.warning("feed %s unreachable (%s); retrying in %.1f s", self.url, exc, backoff)
                stop.wait(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            self.connects += 1
            backoff = 0.1
            sock.settimeout(0.05)
            buffer = b""
            lines: list[bytes] = []
            last_flush = time.monotonic()
            try:
                while not stop.is_set():
                    try:
                        chunk = sock.recv(1 << 20)
                        if not chunk:
                            break  # server closed the connection
                        buffer += chunk
                        parts = buffer.split(b"\n")
                        buffer = parts.pop()
                        lines.extend(parts)
                        if len(buffer) > MAX_LINE_BYTES:
                            # garbage without newlines: keep it as a dead letter, move on
                            lines.append(buffer[:MAX_LINE_BYTES])
                            buffer = b""
                    except TimeoutError:
                        pass
                    if lines and (time.monotonic() - last_flush >= self.batch_s or len(lines) >= 50_000):
                        self._flush(lines)
                        lines, last_flush = [], time.monotonic()
            except OSError as exc:
                log.warning("feed %s dropped: %s", self.url, exc)
            finally:
                sock.close()
                if buffer.strip():
                    lines.append(buffer)
                self._flush(lines)
            if not stop.is_set():
                log.warning("feed %s closed; reconnecting", self.url)
                stop.wait(backoff)
