"""Buses: ``memory://`` (in-process, bounded), ``redis://`` (Redis Streams), ``kafka://``."""

from __future__ import annotations

from tickwise.bus.base import (
    ANOMALIES,
    DEADLETTER,
    FORECASTS,
    SIGNALS,
    TICKS,
    Bus,
    Consumer,
    Message,
    Rebalance,
    bars_topic,
    partition_of,
)
from tickwise.config import parse_backend_url

__all__ = [
    "ANOMALIES",
    "DEADLETTER",
    "FORECASTS",
    "SIGNALS",
    "TICKS",
    "Bus",
    "Consumer",
    "Message",
    "Rebalance",
    "bars_topic",
    "open_bus",
    "partition_of",
]


def open_bus(url: str, *, partitions: int = 8, capacity: int = 1024) -> Bus:
    """Open the bus named by a URL (``memory://`` or ``redis://host:port/db``)."""
    parsed = parse_backend_url("bus", url)
    if parsed.scheme == "memory":
        from tickwise.bus.memory import MemoryBus

        return MemoryBus(partitions=partitions, capacity=capacity, url=url)
    if parsed.scheme == "kafka":
        from tickwise.bus.kafka import KafkaBus

        return KafkaBus(url, partitions=partitions)
    from tickwise.bus.redis import RedisBus

    return RedisBus(url, partitions=partitions)
