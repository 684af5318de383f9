"""A market simulator: many symbols, geometric Brownian motion with jumps, intraday volume.

Each symbol's log price follows GBM with Poisson jumps; ticks arrive as a Poisson process
whose intensity follows a U-shaped intraday profile (busy at the open and the close of a
6.5-hour session); trade sizes are log-normal in lots; prices are rounded to the symbol's
tick size. For a given seed and the same sequence of `Simulator.generate` calls the ticks
are identical. Everything is vectorised over symbols and ticks.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import polars as pl

NS = 1_000_000_000
YEAR_S = 365.25 * 86_400
SESSION_NS = int(6.5 * 3600 * NS)


@dataclass(frozen=True, slots=True)
class Instrument:
    """Parameters of one simulated symbol."""

    symbol: str
    price: float
    annual_vol: float
    tick_size: float
    lot: float = 1.0
    weight: float = 1.0


KNOWN = {
    "NIFTY50": Instrument("NIFTY50", 24_500.0, 0.14, 0.05, 25.0, 1.5),
    "USDINR": Instrument("USDINR", 84.2, 0.05, 0.0025, 1000.0, 0.8),
    "AAPL": Instrument("AAPL", 228.0, 0.28, 0.01, 1.0, 1.5),
    "MSFT": Instrument("MSFT", 415.0, 0.25, 0.01, 1.0, 1.2),
    "SPY": Instrument("SPY", 565.0, 0.16, 0.01, 1.0, 2.0),
    "GOOG": Instrument("GOOG", 165.0, 0.30, 0.01, 1.0, 1.0),
    "AMZN": Instrument("AMZN", 186.0, 0.32, 0.01, 1.0, 1.0),
    "TSLA": Instrument("TSLA", 250.0, 0.60, 0.01, 1.0, 1.3),
    "BTCUSD": Instrument("BTCUSD", 68_000.0, 0.60, 0.5, 0.001, 0.9),
    "EURUSD": Instrument("EURUSD", 1.085, 0.07, 0.00001, 1000.0, 1.1),
}


def instrument_for(symbol: str) -> Instrument:
    """Known parameters, or plausible ones derived from the symbol's name.

    Examples
    --------
    >>> instrument_for("AAPL").price
    228.0
    >>> 10 <= instrument_for("XYZ").price <= 510
    True
    """
    if symbol in KNOWN:
        return KNOWN[symbol]
    h = zlib.crc32(symbol.encode())
    return Instrument(symbol, 10.0 + (h % 500), 0.2 + (h % 30) / 100, 0.01)


def intraday_profile(ts_ns: np.ndarray | int) -> np.ndarray:
    """Relative tick intensity (mean 1) over a 6.5-hour session: U-shaped."""
    u = (np.asarray(ts_ns) % SESSION_NS) / SESSION_NS
    return (0.5 + 8.0 * (u - 0.5) ** 2) / (0.5 + 8.0 / 12.0)


class Simulator:
    """Generate ticks for many symbols.

    Parameters
    ----------
    symbols
        Symbols to simulate.
    tick_rate
        Mean ticks per second over all symbols.
    seed
        Random seed; the same seed and calls give the same ticks.
    start_ns
        Event time of the first tick (defaults to now).

    Examples
    --------
    >>> sim = Simulator(["AAPL", "MSFT"], tick_rate=1000, seed=1, start_ns=0)
    >>> ticks = sim.generate(NS)
    >>> ticks.height > 0 and bool(ticks["price"].min() > 0)
    True
    >>> Simulator(["AAPL"], seed=1, start_ns=0).generate(NS).equals(
    ...     Simulator(["AAPL"], seed=1, start_ns=0).generate(NS))
    True
    """

    def __init__(
        self,
        symbols: list[str],
        *,
        tick_rate: float = 5000.0,
        seed: int = 7,
        start_ns: int | None = None,
        jump_rate_per_day: float = 2.0,
        jump_sigma: float = 0.01,
    ) -> None:
        if not symbols:
            raise ValueError("symbols must name at least one symbol, was empty")
        if tick_rate <= 0:
            raise ValueError(f"tick_rate must be > 0, was {tick_rate}")
        self.instruments = [instrument_for(s) for s in symbols]
        self.symbols = np.array([i.symbol for i in self.instruments], dtype=object)
        weights = np.array([i.weight for i in self.instruments])
        self.rates = tick_rate * weights / weights.sum()
        self.sigma = np.array([i.annual_vol for i in self.instruments]) / np.sqrt(YEAR_S)
        self.tick_size = np.array([i.tick_size for i in self.instruments])
        # decimal places of each tick size, so prices print as 227.98, not 227.98000000000002
        self.scale = np.array([10.0 ** max(0, -Decimal(str(i.tick_size)).normalize().as_tuple().exponent)
                               for i in self.instruments])
        self.lot = np.array([i.lot for i in self.instruments])
        self.log_price = np.log([i.price for i in self.instruments])
        self.jump_rate = jump_rate_per_day / 86_400
        self.jump_sigma = jump_sigma
        self.rng = np.random.default_rng(seed)
        self.now_ns = time.time_ns() if start_ns is None else int(start_ns)
        self.last_ts = np.full(len(symbols), self.now_ns, dtype=np.int64)
        self.seq = np.zeros(len(symbols), dtype=np.int64)

    def generate(self, duration_ns: int) -> pl.DataFrame:
        """Ticks with event times in ``[now, now + duration)``, then move ``now`` on."""
        start, rng = self.now_ns, self.rng
        self.now_ns = start + int(duration_ns)
        mid = start + duration_ns // 2
        counts = rng.poisson(self.rates * (duration_ns / NS) * intraday_profile(mid))
        n = int(counts.sum())
        if n == 0:
            return pl.DataFrame(schema={"symbol": pl.Utf8, "ts_event": pl.Int64, "price": pl.Float64,
                                        "size": pl.Float64, "id": pl.Utf8})
        sym = np.repeat(np.arange(len(counts)), counts)
        ts = start + rng.integers(0, max(int(duration_ns), 1), size=n)
        order = np.lexsort((ts, sym))
        ts = ts[order]
        # time since the previous tick of the same symbol
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        prev = np.empty(n, dtype=np.int64)
        prev[1:] = ts[:-1]
        has = counts > 0
        prev[starts[has]] = self.last_ts[has]
        dt_s = np.maximum(ts - prev, 1) / NS
        sigma = self.sigma[sym]
        step = -0.5 * sigma**2 * dt_s + sigma * np.sqrt(dt_s) * rng.standard_normal(n)
        jumps = rng.random(n) < self.jump_rate * dt_s
        step[jumps] += rng.normal(0.0, self.jump_sigma, int(jumps.sum()))
        # cumulative sum within each symbol
        csum = np.cumsum(step)
        offsets = self._group_offsets(csum, counts)
        log_price = self.log_price[sym] + (csum - offsets)
        tick = self.tick_size[sym]
        scale = self.scale[sym]
        price = np.round(np.maximum(np.round(np.exp(log_price) / tick) * tick, tick) * scale) / scale
        lots = np.maximum(np.round(rng.lognormal(3.0, 1.0, n)), 1.0)
        size = lots * self.lot[sym]
        seq = self.seq[sym] + (np.arange(n) - np.repeat(starts, counts)) + 1
        ends = np.cumsum(counts) - 1
        self.log_price[has] = log_price[ends[has]]
        self.last_ts[has] = ts[ends[has]]
        self.seq += counts
        frame = pl.DataFrame({
            "symbol": self.symbols[sym].astype(str),
            "ts_event": ts,
            "price": price,
            "size": size,
            "seq": seq,
        })
        frame = frame.with_columns(pl.format("{}-{}", "symbol", "seq").alias("id")).drop("seq")
        # arrival order: by event time across symbols
        return frame.sort("ts_event", maintain_order=True)

    @staticmethod
    def _group_offsets(csum: np.ndarray, counts: np.ndarray) -> np.ndarray:
        ends = np.cumsum(counts)
        before = np.concatenate(([0.0], csum))[np.concatenate(([0], ends[:-1]))]
        return np.repeat(before, counts)
