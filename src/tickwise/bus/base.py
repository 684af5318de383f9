"""The bus contract: topics of byte payloads, split into partitions, read by groups.

A topic named ``ticks`` is spread over ``partitions`` partitions; a symbol always goes to
``partition_of(symbol, partitions)``, so every tick of a symbol reaches the same worker.
Other topics (``bars.1m``, ``signals``, ``deadletter``) use partition 0 unless a caller
says otherwise.

Delivery is at least once. A group reads each entry of a partition once in the normal
case; entries a consumer read but did not ack are handed again to the next owner of the
partition (``Consumer.reclaim``). Each partition of a topic is owned by one consumer of a
group at a time (``Consumer.rebalance``), which is what keeps per-symbol state in one place.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

TICKS = "ticks"
DEADLETTER = "deadletter"
SIGNALS = "signals"
FORECASTS = "forecasts"
ANOMALIES = "anomalies"


def bars_topic(timeframe: str) -> str:
    """Return the topic that carries closed bars of one interval.

    Examples
    --------
    >>> bars_topic("1m")
    'bars.1m'
    """
    return f"bars.{timeframe}"


def partition_of(symbol: str, partitions: int) -> int:
    """Return the stable partition of a symbol (CRC-32, the same in every process).

    Examples
    --------
    >>> partition_of("AAPL", 8) == partition_of("AAPL", 8)
    True
    """
    return zlib.crc32(symbol.encode()) % partitions


@dataclass(frozen=True, slots=True)
class Message:
    """One entry read from a partition; ``position`` orders entries within it."""

    topic: str
    partition: int
    id: str
    payload: bytes

    @property
    def position(self) -> tuple[int, int]:
        return position_of(self.id)


def position_of(entry_id: str) -> tuple[int, int]:
    """Order key of an entry id (``"<ms>-<seq>"``).

    Examples
    --------
    >>> position_of("5-2") < position_of("10-0")
    True
    """
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class Rebalance:
    """Partitions a consumer gained and lost in one `Consumer.rebalance` call."""

    gained: tuple[int, ...] = ()
    lost: tuple[int, ...] = ()


class Consumer(ABC):
    """A member of a consumer group on one topic."""

    topic: str
    group: str
    name: str

    @abstractmethod
    def rebalance(self) -> Rebalance:
        """Renew this member's partitions, take free ones and give up any beyond its share.

        Call it only when the caller has committed everything it read from the
        partitions it may lose.
        """

    @abstractmethod
    def renew(self) -> None:
        """Keep this member's partitions while it is busy for longer than a lease (a stage
        warming up): renews what it owns, takes and gives up nothing. A partition whose lease
        could not be renewed is reported lost by the next `rebalance`.
        """

    @abstractmethod
    def owned(self) -> tuple[int, ...]:
        """Return the partitions this member owns now."""

    @abstractmethod
    def reclaim(self, partition: int) -> list[Message]:
        """Take over the entries of a partition read but never acked by anyone."""

    @abstractmethod
    def poll(self, *, max_messages: int, timeout_s: float) -> list[Message]:
        """Return new entries from the owned partitions, waiting up to ``timeout_s``."""

    @abstractmethod
    def ack(self, messages: Sequence[Message]) -> None:
        """Mark entries as done; call only after their effects are committed."""

    @abstractmethod
    def close(self) -> None:
        """Give up the partitions and release resources (committed work stays)."""


class Bus(ABC):
    """Topics of byte payloads."""

    url: str
    partitions: int
    #: True when entries survive the process (Redis); a memory bus needs no checkpoints.
    is_durable: bool

    @abstractmethod
    def publish(self, topic: str, payloads: Sequence[bytes], *, partition: int = 0) -> None:
        """Append entries to a partition; wait while the bus is full (never drop)."""

    @abstractmethod
    def consumer(self, topic: str, *, group: str, name: str) -> Consumer:
        """Join ``group`` on ``topic`` as member ``name``."""

    @abstractmethod
    def lag(self, topic: str, group: str) -> int:
        """Return how many entries the group has not yet acked, over all partitions."""

    @abstractmethod
    def read_latest(self, topic: str, count: int, *, partition: int = 0) -> list[Message]:
        """Return up to ``count`` newest entries without joining a group (for viewers)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def topic_partitions(self, topic: str) -> int:
        return self.partitions if topic == TICKS else 1
