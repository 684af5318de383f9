"""Event-time OHLCV bars over several intervals at once, on columnar batches.

Semantics (the same for any batching of the same ticks, in any order within the
allowed lateness):

- A tick belongs to the window ``[start, start + interval)`` with
  ``start = ts - ts % interval``; a bar is labelled by its window start.
- The watermark is the newest event time seen minus the allowed lateness; it never goes
  back. A window closes when the watermark reaches its end.
- A tick older than the watermark at the moment it arrives is late: it goes to the dead
  letters with reason ``late`` and touches no bar (so every interval stays consistent:
  a 5m bar is exactly the sum of its 1m bars).
- A tick whose id was already seen in an open window is a ``duplicate``.
- open is the price of the earliest tick (ties: the lower price), close the price of the
  latest (ties: the higher price), so the result does not depend on arrival order.
- vwap = sum(price * size) / sum(size), null when the volume is 0.

State (`BarState`) is plain data, serialisable with `BarState.to_bytes`, so a worker can
checkpoint it with the bars it committed and resume after a crash.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import msgspec
import numpy as np
import polars as pl

from tickwise.codec import decode_table, encode_table
from tickwise.timeframes import timeframe_ns

_PARTIAL_SCHEMA = {
    "symbol": pl.Utf8,
    "timeframe": pl.Utf8,
    "start": pl.Int64,
    "open": pl.Float64,
    "open_ts": pl.Int64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "close_ts": pl.Int64,
    "volume": pl.Float64,
    "trades": pl.Int64,
    "pv": pl.Float64,
}
_IDS_SCHEMA = {"id": pl.Utf8, "ts_event": pl.Int64}
_NO_TS = -(2**63)


def _empty_partials() -> pl.DataFrame:
    return pl.DataFrame(schema=_PARTIAL_SCHEMA)


@dataclass
class BarState:
    """Open windows, the watermark and recently seen tick ids of one partition."""

    max_ts: int = _NO_TS
    watermark: int = _NO_TS
    partials: pl.DataFrame = field(default_factory=_empty_partials)
    seen_ids: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_IDS_SCHEMA))

    def to_bytes(self) -> bytes:
        return msgspec.msgpack.encode({
            "max_ts": self.max_ts,
            "watermark": self.watermark,
            "partials": encode_table(self.partials.to_arrow()),
            "seen_ids": encode_table(self.seen_ids.to_arrow()),
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> BarState:
        raw = msgspec.msgpack.decode(data)
        return cls(
            max_ts=raw["max_ts"],
            watermark=raw["watermark"],
            partials=pl.from_arrow(decode_table(raw["partials"])).cast(_PARTIAL_SCHEMA),  # type: ignore[union-attr]
            seen_ids=pl.from_arrow(decode_table(raw["seen_ids"])).cast(_IDS_SCHEMA),  # type: ignore[union-attr]
        )


@dataclass(slots=True)
class BarOutput:
    """What one call produced: closed bars, and rejected ticks with reasons."""

    bars: pl.DataFrame
    rejected: pl.DataFrame  # the tick columns plus "reason"
    ts_closed: float  # wall-clock time (time.time()) the bars were found closed


def _combine(frame: pl.DataFrame) -> pl.DataFrame:
    # partial aggregates are associative: combine any number of them per window
    return frame.group_by("symbol", "timeframe", "start").agg(
        pl.col("open").sort_by("open_ts", "open").first(),
        pl.col("open_ts").min(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").sort_by("close_ts", "close").last(),
        pl.col("close_ts").max(),
        pl.col("volume").sum(),
        pl.col("trades").sum(),
        pl.col("pv").sum(),
    )


def finalize(partials: pl.DataFrame) -> pl.DataFrame:
    """Turn partial aggregates into bars (`tickwise.domain.BAR_SCHEMA` columns)."""
    return partials.sort("timeframe", "symbol", "start").select(
        pl.col("symbol"),
        pl.col("timeframe"),
        pl.col("start").cast(pl.Datetime("ns", "UTC")).alias("ts"),
        "open",
        "high",
        "low",
        "close",
        "volume",
        "trades",
        pl.when(pl.col("volume") > 0).then(pl.col("pv") / pl.col("volume")).otherwise(None).alias("vwap"),
    )


class BarAggregator:
    """Turn batches of valid ticks into closed bars for several intervals.

    Parameters
    ----------
    timeframes
        Interval names, e.g. ``["1s", "1m", "5m"]``; each must be a multiple of the
        shortest so longer bars are built from the shortest ones.
    lateness_ms
        How far behind the newest event time a tick may arrive and still count.

    Examples
    --------
    >>> agg = BarAggregator(["1s"], lateness_ms=0)
    >>> ticks = pl.DataFrame({"symbol": ["A", "A", "A"], "ts_event": [0, 500_000_000, 1_000_000_000],
    ...                       "price": [10.0, 11.0, 9.0], "size": [1.0, 1.0, 2.0], "id": [None, None, None]})
    >>> state = BarState()
    >>> out = agg.process(state, ticks)
    >>> out.bars.select("open", "high", "low", "close", "volume").row(0)
    (10.0, 11.0, 10.0, 11.0, 2.0)
    """

    def __init__(self, timeframes: list[str], *, lateness_ms: int = 1000) -> None:
        if not timeframes:
            raise ValueError("timeframes must name at least one interval, was empty")
        self.timeframes = sorted(set(timeframes), key=timeframe_ns)
        self.interval_ns = {tf: timeframe_ns(tf) for tf in self.timeframes}
        base = self.interval_ns[self.timeframes[0]]
        for tf, ns in self.interval_ns.items():
            if ns % base:
                raise ValueError(
                    f"every timeframe must be a multiple of the shortest ({self.timeframes[0]}), was {tf}"
                )
        self.lateness_ns = int(lateness_ms) * 1_000_000

    def _late_mask(self, state: BarState, ts: np.ndarray) -> np.ndarray:
        # watermark just before each tick arrives, in arrival order
        prior_max = np.maximum.accumulate(np.concatenate(([state.max_ts], ts[:-1])))
        with np.errstate(over="ignore"):
            wm = np.where(prior_max == _NO_TS, _NO_TS, prior_max - self.lateness_ns)
        wm = np.maximum(wm, state.watermark)
        return ts < wm

    def process(self, state: BarState, ticks: pl.DataFrame) -> BarOutput:
        """Add valid ticks (columns symbol, ts_event, price, size, id) in arrival order."""
        rejected = []
        if ticks.height:
            ts = ticks["ts_event"].to_numpy()
            late = self._late_mask(state, ts)
            dup = self._duplicates(state, ticks)
            reason = np.where(dup, "duplicate", np.where(late, "late", ""))
            bad = reason != ""
            if bad.any():
                rejected.append(ticks.filter(pl.Series(bad)).with_columns(pl.Series("reason", reason[bad])))
                keep = ticks.filter(pl.Series(~bad))
            else:
                keep = ticks
            state.max_ts = max(state.max_ts, int(ts.max()))
            if keep.height:
                self._add(state, keep)
                ids = keep.filter(pl.col("id").is_not_null()).select("id", "ts_event")
                if ids.height:
                    state.seen_ids = pl.concat([state.seen_ids, ids])
            if state.max_ts != _NO_TS:
                state.watermark = max(state.watermark, state.max_ts - self.lateness_ns)
        bars = self._close(state)
        rej = pl.concat(rejected) if rejected else ticks.clear().with_columns(pl.lit("", dtype=pl.Utf8).alias("reason"))
        return BarOutput(bars, rej, time.time())

    def advance(self, state: BarState, watermark: int) -> BarOutput:
        """Move the watermark forward without ticks (a quiet feed), closing due windows."""
        state.watermark = max(state.watermark, watermark)
        return BarOutput(self._close(state), pl.DataFrame(), time.time())

    def drain(self, state: BarState) -> pl.DataFrame:
        """Close every open window (end of a finite stream)."""
        bars = finalize(state.partials) if state.partials.height else finalize(_empty_partials())
        state.partials = _empty_partials()
        return bars

    def _duplicates(self, state: BarState, ticks: pl.DataFrame) -> np.ndarray:
        ids = ticks["id"]
        if ids.null_count() == ticks.height:
            return np.zeros(ticks.height, dtype=bool)
        seen = ids.is_in(state.seen_ids["id"].implode()) if state.seen_ids.height else pl.Series([False] * ticks.height)
        again = ids.is_not_null() & ~ids.is_first_distinct()
        return (ids.is_not_null() & (seen | again)).fill_null(False).to_numpy()

    def _add(self, state: BarState, ticks: pl.DataFrame) -> None:
        base_tf = self.timeframes[0]
        base_ns = self.interval_ns[base_tf]
        ts = pl.col("ts_event")
        finest = ticks.group_by("symbol", (ts - ts % base_ns).alias("start")).agg(
            pl.col("price").sort_by("ts_event", "price").first().alias("open"),
            ts.min().alias("open_ts"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").sort_by("ts_event", "price").last().alias("close"),
            ts.max().alias("close_ts"),
            pl.col("size").sum().alias("volume"),
            pl.len().cast(pl.Int64).alias("trades"),
            (pl.col("price") * pl.col("size")).sum().alias("pv"),
        )
        parts = []
        for tf in self.timeframes:
            ns = self.interval_ns[tf]
            part = finest.with_columns(pl.lit(tf).alias("timeframe"), (pl.col("start") - pl.col("start") % ns))
            parts.append(part.select(list(_PARTIAL_SCHEMA)))
        new = pl.concat(parts)
        state.partials = _combine(pl.concat([state.partials, new])).select(list(_PARTIAL_SCHEMA))

    def _close(self, state: BarState) -> pl.DataFrame:
        if state.partials.height == 0 or state.watermark == _NO_TS:
            return finalize(_empty_partials())
        ends = pl.col("start") + pl.col("timeframe").replace_strict(self.interval_ns, return_dtype=pl.Int64)
        closed_mask = ends <= state.watermark
        closed = state.partials.filter(closed_mask)
        if closed.height:
            state.partials = state.partials.filter(~closed_mask)
            if state.seen_ids.height:
                state.seen_ids = state.seen_ids.filter(pl.col("ts_event") >= state.watermark)
        return finalize(closed)
