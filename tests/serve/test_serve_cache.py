"""The read routes' cache: one build per key at a time, refreshed ahead, never older than its TTL."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import polars as pl
import pytest

from tests.serve.conftest import WAREHOUSE_WARNINGS
from tickwise.serve.cache import ResponseCache

pytestmark = WAREHOUSE_WARNINGS


class _Counter:
    """A build function that counts its calls and answers with the call number."""

    def __init__(self, *, pause_s: float = 0.0) -> None:
        self.calls = 0
        self.pause_s = pause_s
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        time.sleep(self.pause_s)
        with self._lock:
            self.calls += 1
            return str(self.calls).encode()


def test_cache_concurrent_misses_build_once():
    cache, build = ResponseCache(ttl_s=10), _Counter(pause_s=0.05)

    async def many() -> list[bytes]:
        return await asyncio.gather(*(cache.fetch(("k",), build) for _ in range(20)))

    assert asyncio.run(many()) == [b"1"] * 20
    assert build.calls == 1


def test_cache_rarely_asked_key_is_rebuilt_not_served_stale():
    cache, build = ResponseCache(ttl_s=0.05), _Counter()

    async def scenario() -> list[bytes]:
        first = await cache.fetch(("k",), build)
        await asyncio.sleep(0.08)
        return [first, await cache.fetch(("k",), build)]

    assert asyncio.run(scenario()) == [b"1", b"2"]


def test_cache_key_in_demand_is_refreshed_before_it_expires():
    cache, build = ResponseCache(ttl_s=0.5), _Counter()

    async def scenario() -> list[bytes | None]:
        first = await cache.fetch(("k",), build)
        await asyncio.sleep(0.3)  # past half its life: answered as is, rebuilt behind
        second = await cache.fetch(("k",), build)
        for _ in range(100):
            if cache.get(("k",)) == b"2":
                break
            await asyncio.sleep(0.01)
        return [first, second, cache.get(("k",))]

    assert asyncio.run(scenario()) == [b"1", b"1", b"2"]


def test_cache_failed_build_raises_and_caches_nothing():
    cache = ResponseCache(ttl_s=10)

    def broken() -> bytes:
        raise LookupError("no such bars")

    with pytest.raises(LookupError):
        asyncio.run(cache.fetch(("k",), broken))
    assert cache.get(("k",)) is None


def test_cache_off_builds_every_time():
    cache, build = ResponseCache(ttl_s=0), _Counter()

    async def twice() -> list[bytes]:
        return [await cache.fetch(("k",), build), await cache.fetch(("k",), build)]

    assert asyncio.run(twice()) == [b"1", b"2"]


def _bars_requests_counted(url: str) -> float:
    metrics = httpx.get(f"{url}/metrics").text
    return sum(float(x.rsplit(" ", 1)[1]) for x in metrics.splitlines()
               if x.startswith("tickwise_api_requests_total{") and 'route="/api/v1/bars/{symbol}"' in x)


def test_bars_repeated_request_answered_from_memory_identically_and_counted(api):
    url, _, _ = api
    counted = _bars_requests_counted(url)
    params = {"timeframe": "1d", "limit": 5}
    first = httpx.get(f"{url}/api/v1/bars/AAPL", params=params)
    again = [httpx.get(f"{url}/api/v1/bars/AAPL", params=params) for _ in range(3)]
    assert all(r.status_code == 200 and r.content == first.content for r in again)
    assert again[0].headers["content-type"] == "application/json"
    assert len(httpx.get(f"{url}/api/v1/bars/AAPL", params={"timeframe": "1d", "limit": 2}).json()) == 2
    assert _bars_requests_counted(url) - counted == 5


def test_bars_new_bar_visible_once_the_cache_ttl_passed(api, filled):
    url, _, bars = api
    _, warehouse, _ = filled
    params = {"timeframe": "1d", "limit": 1}
    before = httpx.get(f"{url}/api/v1/bars/AAPL", params=params).json()
    last = bars.filter(pl.col("symbol") == "AAPL").sort("ts").tail(1)
    newer = last.with_columns(pl.col("ts") + pl.duration(days=1), pl.col("close") + 1.0)
    warehouse.upsert("bars", newer.to_arrow())
    time.sleep(0.3)  # the API's cache keeps answers for 0.25 s
    after = httpx.get(f"{url}/api/v1/bars/AAPL", params=params).json()
    assert after[0]["ts"] > before[0]["ts"]
    assert after[0]["close"] == newer["close"][0]
