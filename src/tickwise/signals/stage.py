"""The live ``sma_cross`` stage: a BUY/SELL/HOLD row per closed bar, per symbol.

`tickwise up` runs it on the closed bars of its timeframes (``1m``; add others with
``timeframes=``). Per (symbol, timeframe) it keeps one streaming `SmaCross`, so each bar
costs O(1). It returns one row per bar for the ``signals`` table and one JSON payload per
row for the ``signals`` topic.

After a restart the state starts empty and the first ``max(slow, volume_window)`` bars of
each series are HOLD "warming up" again; pass ``history`` (a function returning recent
bars of a series from the warehouse) to warm up from stored bars instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import polars as pl

from tickwise.bus.base import SIGNALS
from tickwise.codec import encode_json
from tickwise.config import Settings
from tickwise.pipeline.stages import History, StageOutput, warehouse_history
from tickwise.signals.sma_cross import RULE, SIGNAL_COLUMNS, SmaCross, SmaCrossParams
from tickwise.signals.tables import SIGNALS_TABLE
from tickwise.store.base import Warehouse

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_SCHEMA = {
    "symbol": pl.String, "timeframe": pl.String, "ts": pl.Datetime("ns", "UTC"), "rule": pl.String,
    "signal": pl.String, "reason": pl.String, "price": pl.Float64, "fast": pl.Float64,
    "slow": pl.Float64, "volume_ratio": pl.Float64,
}


class SmaCrossStage:
    """A `BarStage` that runs the ``sma_cross`` rule on every closed bar.

    Examples
    --------
    >>> from datetime import datetime, timedelta, UTC
    >>> stage = SmaCrossStage(SmaCrossParams(fast=2, slow=3, volume_window=2))
    >>> t0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    >>> bars = pl.DataFrame({"symbol": "AAPL", "timeframe": "1m",
    ...                      "ts": [t0 + timedelta(minutes=i) for i in range(4)],
    ...                      "close": [5.0, 4.0, 3.0, 6.0], "volume": [10.0, 10.0, 10.0, 40.0]})
    >>> out = stage.on_bars(bars)
    >>> out.tables["signals"]["signal"].to_list(), len(out.topics["signals"])
    (['HOLD', 'HOLD', 'HOLD', 'BUY'], 4)
    """

    def __init__(self, params: SmaCrossParams | None = None, *, timeframes: Sequence[str] = ("1m",),
                 history: History | None = None) -> None:
        self.params = params or SmaCrossParams()
        self.name = f"signals.{RULE}"
        self.outputs = (SIGNALS_TABLE.name,)
        self.timeframes = tuple(timeframes)
        self.history = history
        self.states: dict[tuple[str, str], SmaCross] = {}

    def _state(self, symbol: str, timeframe: str, ts_ns: int) -> SmaCross:
        key = (symbol, timeframe)
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = SmaCross(self.params)
            if self.history is not None:
                past = self.history(symbol, timeframe, ts_ns, self.params.warmup + 1)
                for close, volume in zip(past["close"].to_list(), past["volume"].to_list(), strict=True):
                    state.update(float(close), float(volume))
        return state

    def revoked(self, timeframe: str) -> None:
        """Forget the series of ``timeframe`` (a rebalance gave its bars to another worker): if
        they come back they warm up again from stored bars, which include what that worker saw
        meanwhile (`StageRunner` calls this)."""
        self.states = {k: v for k, v in self.states.items() if k[1] != timeframe}

    def on_bars(self, bars: pl.DataFrame) -> StageOutput:
        """Judge each bar (oldest first per symbol); return table rows and topic payloads."""
        rows: dict[str, list] = {c: [] for c in SIGNAL_COLUMNS}
        payloads: list[bytes] = []
        ts_ns = bars["ts"].dt.epoch("ns").to_list()
        for symbol, timeframe, ts, close, volume in zip(
            bars["symbol"].to_list(), bars["timeframe"].to_list(), ts_ns,
            bars["close"].to_list(), bars["volume"].to_list(), strict=True,
        ):
            state = self._state(symbol, timeframe, ts)
            state.update(float(close), float(volume))
            v = state.value
            row = {"symbol": symbol, "timeframe": timeframe, "ts": ts, "rule": RULE, "signal": v.signal,
                   "reason": v.reason, "price": float(close), "fast": v.fast, "slow": v.slow,
                   "volume_ratio": v.volume_ratio}
            for c in SIGNAL_COLUMNS:
                rows[c].append(row[c])
            iso = (_EPOCH + timedelta(microseconds=ts // 1000)).isoformat().replace("+00:00", "Z")
            payloads.append(encode_json({**row, "ts": iso, "ts_ns": ts}))
        frame = pl.DataFrame({**rows, "ts": pl.Series(rows["ts"], dtype=pl.Int64)}).with_columns(
            pl.col("ts").cast(pl.Datetime("ns", "UTC"))
        ).cast(_SCHEMA)  # type: ignore[arg-type]
        return StageOutput(tables={SIGNALS_TABLE.name: frame}, topics={SIGNALS: payloads})


def make_stage(settings: Settings, *, warehouse: Warehouse | None = None) -> SmaCrossStage:
    """Build the stage for `tickwise up`: ``1m`` bars, or the configured timeframes without ``1m``.

    Examples
    --------
    >>> from tickwise.config import Settings
    >>> make_stage(Settings(timeframes=["1s", "1m", "5m"])).timeframes
    ('1m',)
    """
    timeframes = ("1m",) if "1m" in settings.timeframes else tuple(settings.timeframes)
    history = warehouse_history(warehouse) if warehouse is not None else None
    return SmaCrossStage(timeframes=timeframes, history=history)
