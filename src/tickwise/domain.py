"""Market data nouns, their invariants, and their Arrow schemas.

Hot paths move Arrow tables with these schemas; the dataclasses are for the edges
(CLI, API, tests). All timestamps are UTC nanoseconds since the epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyarrow as pa

Nanos = int

TICK_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts_event", pa.int64(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("size", pa.float64(), nullable=False),
        pa.field("id", pa.string(), nullable=True),
    ]
)

BAR_COLUMNS = ["symbol", "timeframe", "ts", "open", "high", "low", "close", "volume", "trades", "vwap"]

BAR_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("timeframe", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.float64(), nullable=False),
        pa.field("trades", pa.int64(), nullable=True),
        pa.field("vwap", pa.float64(), nullable=True),
    ]
)

DEADLETTER_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """One trade print.

    Examples
    --------
    >>> Tick(symbol="AAPL", ts_event=1_700_000_000_000_000_000, price=189.5, size=100.0).price
    189.5
    """

    symbol: str
    ts_event: Nanos
    price: float
    size: float
    id: str | None = None

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValueError(f"symbol must be non-empty, was {self.symbol!r}")
        if not (math.isfinite(self.price) and self.price > 0):
            raise ValueError(f"price must be finite and > 0, was {self.price}")
        if not (math.isfinite(self.size) and self.size >= 0):
            raise ValueError(f"size must be finite and >= 0, was {self.size}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """An OHLCV bar labelled by the UTC start of its window.

    Examples
    --------
    >>> Bar(symbol="AAPL", timeframe="1m", ts=0, open=1.0, high=2.0, low=0.5, close=1.5,
    ...     volume=10.0, trades=3, vwap=1.2).close
    1.5
    """

    symbol: str
    timeframe: str
    ts: Nanos
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    vwap: float | None = None

    def __post_init__(self) -> None:
        if not (self.low <= min(self.open, self.close) and max(self.open, self.close) <= self.high):
            raise ValueError(
                f"bar must have low <= open, close <= high, was o={self.open} h={self.high} "
                f"l={self.low} c={self.close}"
            )
        if self.volume < 0:
            raise ValueError(f"volume must be >= 0, was {self.volume}")
