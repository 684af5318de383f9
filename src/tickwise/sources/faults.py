"""Labelled faults in the simulator's ticks, to watch and measure the live anomaly path.

`tickwise evaluate-anomaly` measures the detectors on real bars with injected events; this
module injects faults one level lower, into ticks, so the whole live path (bus, bars,
detectors, thresholds, the ``anomalies`` table) is measured end to end, as `tickwise up
--faults N` does. `FaultySimulator` wraps a `Simulator`; after a warm-up it starts faults at
``per_minute`` over all symbols (a Poisson process in event time), each on one symbol drawn
at random, and keeps every one in `FaultySimulator.faults` with its first and last tick time:

- ``bad_print``: one trade printed 1-3 % off the market (a fat finger, a bad venue print);
  the price goes on from where it was, so the bar shows a long wick.
- ``block_trade``: one trade of 5-15 times the volume the symbol trades in a second.
- ``frozen_feed``: for 5-10 seconds every trade of the symbol carries the last price before
  the freeze (a stale feed repeating itself): bars with no range and no move.

Faults on one symbol do not overlap (a new one waits until the symbol's last has ended).
`match_faults` counts, per detector, the faults flagged on a bar they touch or the bar
after (the evaluation's tolerance) and the flagged bars no fault touched.

Examples
--------
>>> from tickwise.sources.simulator import NS, Simulator
>>> sim = FaultySimulator(Simulator(["AAPL", "MSFT"], tick_rate=2000, seed=1, start_ns=0),
...                       per_minute=60, warmup_s=5, seed=2)
>>> ticks = pl.concat([sim.generate(NS // 10) for _ in range(300)])
>>> sorted({f.kind for f in sim.faults}) == sorted(KINDS), all(f.start_ns >= 5 * NS for f in sim.faults)
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from tickwise.exceptions import InputError
from tickwise.sources.simulator import NS, Simulator, intraday_profile

KINDS = ("bad_print", "block_trade", "frozen_feed")
#: Mean shares (in lots) of one simulated trade: the mean of its log-normal(3, 1) lot count.
_MEAN_LOTS = float(np.exp(3.5))


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault: its symbol and kind, the event times of its first and last
    affected tick, and its size (bad print: the relative price error; block trade: the
    multiple of a second's volume; frozen feed: seconds)."""

    symbol: str
    kind: str
    start_ns: int
    end_ns: int
    size: float


class FaultySimulator:
    """A `Simulator` whose ticks carry labelled faults (module docstring).

    Parameters
    ----------
    sim
        The simulator whose ticks are faulted.
    per_minute
        Faults started per minute of event time, over all symbols.
    kinds
        The kinds drawn from, each equally likely.
    warmup_s
        No fault starts in the first seconds of event time (the detectors' bands and
        thresholds need bars first).
    seed
        Seed of the faults' draws (the ticks keep the simulator's own seed).
    """

    def __init__(self, sim: Simulator, *, per_minute: float, kinds: Sequence[str] = KINDS,
                 warmup_s: float = 30.0, seed: int = 0) -> None:
        if not np.isfinite(per_minute) or per_minute <= 0:
            raise InputError(f"faults per minute must be a positive number, was {per_minute}")
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise InputError(f"fault kinds must be among {', '.join(KINDS)}, was {', '.join(kinds) or 'none'}")
        if warmup_s < 0:
            raise InputError(f"warmup_s must be >= 0, was {warmup_s}")
        self.sim = sim
        self.per_minute = float(per_minute)
        self.kinds = tuple(kinds)
        self.rng = np.random.default_rng(seed)
        self.start_ns = sim.now_ns
        self.warmup_ns = int(warmup_s * NS)
        self.faults: list[Fault] = []
        n = len(sim.symbols)
        #: per symbol: the event time its current fault ends (no new one before), and a freeze
        self._busy_until = np.full(n, -1, dtype=np.int64)
        self._frozen_from = np.zeros(n, dtype=np.int64)
        self._frozen_until = np.full(n, -1, dtype=np.int64)
        self._frozen_price = np.zeros(n)
        self._last_price = np.exp(sim.log_price)

    @property
    def now_ns(self) -> int:
        return self.sim.now_ns

    @now_ns.setter
    def now_ns(self, value: int) -> None:
        """Moving the clock (`simulate_live` stamps ticks with the wall clock) moves the warm-up."""
        if not self.faults and self.sim.now_ns == self.start_ns:
            self.start_ns = int(value)
        self.sim.now_ns = int(value)

    def generate(self, duration_ns: int) -> pl.DataFrame:
        """The simulator's ticks of ``[now, now + duration)`` with this span's faults applied."""
        start = self.sim.now_ns
        ticks = self.sim.generate(duration_ns)
        if ticks.height == 0:
            return ticks
        sym_index = {s: i for i, s in enumerate(self.sim.symbols.tolist())}
        sym = ticks["symbol"].replace_strict(sym_index, return_dtype=pl.Int64).to_numpy()
        ts = ticks["ts_event"].to_numpy()
        clean = ticks["price"].to_numpy()
        price = clean.copy()
        size = ticks["size"].to_numpy().copy()
        self._freeze(sym, ts, price)
        begin = max(start, self.start_ns + self.warmup_ns)
        end = start + int(duration_ns)
        if end > begin:
            n = int(self.rng.poisson(self.per_minute * (end - begin) / (60 * NS)))
            for at in np.sort(self.rng.integers(begin, end, size=n)).tolist():
                self._start_fault(int(at), sym, ts, clean, price, size)
        # the price a freeze repeats: each symbol's last trade before it, faults left out
        present, first_from_end = np.unique(sym[::-1], return_index=True)
        self._last_price[present] = clean[sym.size - 1 - first_from_end]
        return ticks.with_columns(pl.Series("price", price), pl.Series("size", size))

    def _freeze(self, sym: np.ndarray, ts: np.ndarray, price: np.ndarray) -> None:
        frozen = (ts >= self._frozen_from[sym]) & (ts <= self._frozen_until[sym])
        price[frozen] = self._frozen_price[sym[frozen]]

    def _start_fault(self, at: int, sym: np.ndarray, ts: np.ndarray, clean: np.ndarray, price: np.ndarray,
                     size: np.ndarray) -> None:
        i = int(self.rng.integers(len(self.sim.symbols)))
        kind = self.kinds[int(self.rng.integers(len(self.kinds)))]
        if at <= self._busy_until[i]:
            return  # the symbol's previous fault is still on: none started
        symbol = str(self.sim.symbols[i])
        if kind == "frozen_feed":
            seconds = float(self.rng.uniform(5.0, 10.0))
            until = at + int(seconds * NS)
            before = np.flatnonzero((sym == i) & (ts < at))
            self._frozen_price[i] = clean[before[-1]] if before.size else self._last_price[i]
            self._frozen_from[i], self._frozen_until[i] = at, until
            self._busy_until[i] = until
            self._freeze(sym, ts, price)
            self.faults.append(Fault(symbol, kind, at, until, seconds))
            return
        mine = np.flatnonzero((sym == i) & (ts >= at))
        if not mine.size:
            return  # no trade of the symbol left in this span: none started
        j = int(mine[0])
        if kind == "bad_print":
            error = float(self.rng.uniform(0.01, 0.03)) * (1 if self.rng.random() < 0.5 else -1)
            tick, scale = float(self.sim.tick_size[i]), float(self.sim.scale[i])
            # on the symbol's tick grid, printed as the simulator prints prices (227.98, not 227.98000000000002)
            price[j] = round(max(round(price[j] * (1 + error) / tick) * tick, tick) * scale) / scale
            self.faults.append(Fault(symbol, kind, int(ts[j]), int(ts[j]), round(error, 4)))
        else:
            multiple = float(self.rng.uniform(5.0, 15.0))
            per_second = self.sim.rates[i] * float(intraday_profile(int(ts[j]))) * _MEAN_LOTS * self.sim.lot[i]
            size[j] = float(np.round(multiple * per_second / self.sim.lot[i]) * self.sim.lot[i])
            self.faults.append(Fault(symbol, kind, int(ts[j]), int(ts[j]), round(multiple, 2)))
        self._busy_until[i] = int(ts[j])


def match_faults(faults: Sequence[Fault], anomalies: pl.DataFrame, *, timeframe_ns: int,
                 since_ns: int | None = None, until_ns: int | None = None) -> list[dict[str, object]]:
    """Per detector of ``anomalies`` (rows with symbol, ts as a datetime or epoch ns, detector,
    of one timeframe): the faults flagged on a bar they touch or the bar after, by kind, and
    the other flagged bars (those from ``since_ns`` to ``until_ns``: the span faults could start
    in, so a detector's warm-up flags before it are not counted).

    Examples
    --------
    >>> import datetime as dt
    >>> f = [Fault("A", "bad_print", 5 * NS + 1, 5 * NS + 1, 0.02), Fault("A", "block_trade", 9 * NS, 9 * NS, 8.0)]
    >>> flagged = pl.DataFrame({"symbol": ["A", "A"], "ts": [6 * NS, 20 * NS], "detector": ["d", "d"]})
    >>> row = match_faults(f, flagged, timeframe_ns=NS)[0]
    >>> row["faults"], row["flagged"], row["other_bars_flagged"], row["by_kind"]
    (2, 1, 1, {'bad_print': '1/1', 'block_trade': '0/1'})
    """
    ts = anomalies["ts"]
    if isinstance(ts.dtype, pl.Datetime):
        ts = ts.dt.epoch("ns")
    bar = ts.to_numpy().astype(np.int64) // timeframe_ns
    symbols = anomalies["symbol"].to_numpy()
    detectors = anomalies["detector"].to_numpy()
    # the bars each fault touches and the one after, the same for every detector
    spans = [{(f.symbol, b) for b in range(f.start_ns // timeframe_ns, f.end_ns // timeframe_ns + 2)} for f in faults]
    matched = set().union(*spans)
    lo = -np.inf if since_ns is None else since_ns // timeframe_ns
    hi = np.inf if until_ns is None else until_ns // timeframe_ns
    rows = []
    for name in sorted(set(detectors.tolist())):
        mine = detectors == name
        flagged = {(str(s), int(b)) for s, b in zip(symbols[mine], bar[mine], strict=True)}
        found: dict[str, list[int]] = {k: [0, 0] for k in KINDS if any(f.kind == k for f in faults)}
        for f, span in zip(faults, spans, strict=True):
            found[f.kind][1] += 1
            if span & flagged:
                found[f.kind][0] += 1
        other = sum(1 for key in flagged - matched if lo <= key[1] <= hi)
        rows.append({"detector": name, "faults": len(faults), "flagged": sum(v[0] for v in found.values()),
                     "other_bars_flagged": other, "by_kind": {k: f"{v[0]}/{v[1]}" for k, v in found.items()}})
    return rows
