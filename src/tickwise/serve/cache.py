"""Answers of the read routes kept in memory for a fraction of a second.

A dashboard and many clients polling "the latest bars" hit the same few keys. The cache keeps
the encoded JSON body of each answer for ``ttl_s``. A body asked for in the second half of its
life is rebuilt in the thread pool while the old one is still served (refresh ahead), so a key
in steady demand never expires and no request waits for the warehouse; a key asked for
rarely is rebuilt on demand, so its answer is never older than ``ttl_s``. Concurrent misses
of one key share one warehouse read (single flight), and while that read runs the expired
body is served for at most ``stale_s``. The warehouse sees a few reads a second per key,
whatever the request rate.

The cache also remembers which raw request (path and query string) led to which key, so the
API's outermost middleware can answer a repeated request straight from memory, before
routing and parameter validation (see `tickwise.serve.api`).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

Key = tuple[Any, ...]
RawRequest = tuple[str, bytes]

# set by the middleware around a GET; `ResponseCache.fetch` notes its key in it
current_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "tickwise_current_request", default=None
)


@dataclass(slots=True)
class _Entry:
    expires: float
    body: bytes
    build: Callable[[], bytes] | None


class ResponseCache:
    """Encoded bodies of read routes, refreshed in the background.

    Parameters
    ----------
    ttl_s
        How long a body is fresh (0 turns the cache off).
    stale_s
        How long past ``ttl_s`` a body may still be served while its rebuild runs.
    max_entries
        Bound on the number of keys (the cache is emptied when it is reached).

    Examples
    --------
    >>> c = ResponseCache(ttl_s=10)
    >>> c.put(("k",), b"{}")
    >>> c.get(("k",))
    b'{}'
    >>> asyncio.run(c.fetch(("n",), lambda: b"[1]"))
    b'[1]'
    """

    def __init__(self, *, ttl_s: float, stale_s: float = 1.0, max_entries: int = 2048) -> None:
        if ttl_s < 0 or stale_s < 0:
            raise ValueError(f"ttl_s and stale_s must be >= 0, was {ttl_s} and {stale_s}")
        self.ttl_s = ttl_s
        self.stale_s = stale_s
        self.max_entries = max_entries
        self._entries: dict[Key, _Entry] = {}
        self._requests: dict[RawRequest, tuple[Key, str]] = {}
        self._inflight: dict[Key, asyncio.Future[bytes]] = {}

    def get(self, key: Key) -> bytes | None:
        """Return the fresh body of ``key``, or None."""
        if self.ttl_s <= 0:
            return None
        hit = self._entries.get(key)
        if hit is None or hit.expires < time.monotonic():
            return None
        return hit.body

    def put(self, key: Key, body: bytes, build: Callable[[], bytes] | None = None) -> None:
        """Keep ``body`` for ``key``; ``build`` (if given) makes a new body when it goes stale."""
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries and key not in self._entries:
            self._entries.clear()
            self._requests.clear()
        self._entries[key] = _Entry(time.monotonic() + self.ttl_s, body, build)

    async def fetch(self, key: Key, build: Callable[[], bytes]) -> bytes:
        """Return the body of ``key``: from memory if fresh or briefly stale, else built once.

        ``build`` runs in the thread pool (it reads the warehouse) and returns the encoded body.
        """
        noted = current_request.get()
        if noted is not None:
            noted["key"] = key
        body = self._serve(key, build)
        if body is not None:
            return body
        return await asyncio.shield(self._start(key, build))

    def remember(self, request: RawRequest, key: Key, route: str) -> None:
        """Note that the raw ``request`` (path, query string) is answered by ``key``."""
        if self.ttl_s > 0 and key in self._entries:
            self._requests[request] = (key, route)

    def lookup(self, request: RawRequest) -> tuple[bytes, str] | None:
        """Return (body, route template) for a raw request seen before, if servable now."""
        known = self._requests.get(request)
        if known is None:
            return None
        entry = self._entries.get(known[0])
        if entry is None:
            return None
        body = self._serve(known[0], entry.build)
        return None if body is None else (body, known[1])

    def _serve(self, key: Key, build: Callable[[], bytes] | None) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or self.ttl_s <= 0:
            return None
        now = time.monotonic()
        if now < entry.expires:
            # past half its life, a body asked for is rebuilt in the background, so a key
            # in steady demand is replaced before it expires and no request waits for it
            if build is not None and now >= entry.expires - self.ttl_s / 2 and key not in self._inflight:
                self._start(key, build).add_done_callback(_retrieve)
            return entry.body
        if key in self._inflight and now < entry.expires + self.stale_s:
            return entry.body
        return None

    def _start(self, key: Key, build: Callable[[], bytes]) -> asyncio.Future[bytes]:
        running = self._inflight.get(key)
        if running is None:
            running = asyncio.ensure_future(self._build(key, build))
            self._inflight[key] = running
        return running

    async def _build(self, key: Key, build: Callable[[], bytes]) -> bytes:
        try:
            body = await run_in_threadpool(build)
            self.put(key, body, build)
            return body
        finally:
            self._inflight.pop(key, None)


def _retrieve(future: asyncio.Future[bytes]) -> None:
    # a failed background refresh leaves the stale body to expire; the next request that
    # cannot be served stale runs the build itself and gets the error as its answer
    if not future.cancelled():
        future.exception()
