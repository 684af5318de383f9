"""Live forecasting: a next-bar OHLC forecast for every symbol on every closed bar.

Per symbol and timeframe the stage keeps the last ``window`` bars and a fitted model.
On each closed bar it takes the bar through the model's cheap ``update`` (for ARIMA one
Kalman-filter step with fixed coefficients) and forecasts the next bar with 80% and 95%
intervals. It refits on a schedule (every ``refit_every`` bars, staggered by symbol so
refits of many symbols do not land on the same bar, at most ``max_fits_per_call`` fits per
call and no new fit once ``fit_budget_s`` is spent in a call, so a refit never holds up
the other symbols' forecasts for long; a deferred symbol keeps the cheap update and refits
on a later bar) and early when the live one-step errors drift (`tickwise.forecast.drift`).

With ``history`` (`tickwise.pipeline.stages.warehouse_history`, which `tickwise up` and
``tickwise worker --analytics`` pass), a series the stage has not seen yet starts from its
last ``window`` stored bars, so after a restart or a failover it forecasts from its first bar
(fitting on the stored window) instead of waiting for ``min_bars`` new ones.

With ``model="lstm"`` there is no per-symbol fit: the promoted network predicts every
symbol whose window is full in one batch.

Output: rows for the ``forecasts`` table and an Arrow payload on the ``forecasts`` topic,
and a BUY/SELL/HOLD signal per forecast (rule ``forecast.<model>``) for the ``signals``
table and topic (see `tickwise.forecast.signal`).
"""

from __future__ import annotations

import datetime as dt
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from tickwise.bus.base import FORECASTS, SIGNALS
from tickwise.codec import encode_json
from tickwise.exceptions import BackendError, ConfigError, DataError
from tickwise.forecast.base import FloatArray
from tickwise.forecast.catalog import MODELS, make_model
from tickwise.forecast.drift import drift_threshold
from tickwise.forecast.lstm import LSTMForecaster
from tickwise.forecast.signal import forecast_signals
from tickwise.forecast.tables import FORECASTS as FORECASTS_TABLE
from tickwise.pipeline.stages import (
    History,
    StageOutput,
    new_series,
    stored_bars,
    warehouse_history,
)
from tickwise.signals.tables import SIGNALS_TABLE
from tickwise.store.base import Warehouse
from tickwise.timeframes import timeframe_ns

SIGNAL_COLUMNS = ("symbol", "timeframe", "ts", "rule", "signal", "reason", "price", "fast", "slow", "volume_ratio")
_BAR_COLUMNS = ["open", "high", "low", "close", "volume"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ForecastConfig:
    """Settings of the live forecasting stage."""

    model: str = "arima"
    version: str = "default"
    params: dict[str, Any] = field(default_factory=dict)
    timeframes: tuple[str, ...] = ("1m",)
    min_bars: int = 60
    window: int = 240
    refit_every: int = 60
    max_fits_per_call: int = 10
    fit_budget_s: float = 0.5
    k: float = 1.0
    drift_window: int = 30
    drift_alpha: float = 0.001

    def __post_init__(self) -> None:
        if self.model not in MODELS or self.model == "seasonal_naive":
            raise ConfigError(f"forecast model must be one of arima, naive, drift, ets, lstm, was {self.model!r}")
        for name in ("min_bars", "window", "refit_every", "max_fits_per_call", "drift_window"):
            if getattr(self, name) < 1:
                raise ConfigError(f"forecast {name} must be >= 1, was {getattr(self, name)}")
        if self.window < self.min_bars:
            raise ConfigError(f"forecast window must be >= min_bars ({self.min_bars}), was {self.window}")


class _Track:
    """State of one (symbol, timeframe)."""

    __slots__ = ("bars", "drift_limit", "errors", "fits", "last_rows", "last_ts", "model",
                 "pending", "refit_at", "since_fit", "train_mse")

    def __init__(self, window: int, drift_window: int, refit_at: int) -> None:
        self.bars: deque[FloatArray] = deque(maxlen=window)
        self.last_ts = -1
        self.model: Any = None
        self.since_fit = 0
        self.refit_at = refit_at
        self.pending: float | None = None
        self.errors: deque[float] = deque(maxlen=drift_window)
        self.train_mse = 0.0
        self.drift_limit = float("inf")
        self.fits = 0
        self.last_rows: tuple[dict[str, Any], dict[str, Any]] | None = None


class ForecastStage:
    """The `BarStage` that forecasts the next bar of every symbol.

    Examples
    --------
    >>> stage = ForecastStage(ForecastConfig(model="naive", min_bars=3, window=10))
    >>> ts = [dt for dt in range(5)]
    >>> bars = pl.DataFrame({"symbol": ["A"] * 5, "timeframe": ["1m"] * 5,
    ...     "ts": pl.Series([t * 60_000_000_000 for t in range(5)]).cast(pl.Datetime("ns", "UTC")),
    ...     "open": [10.0, 11, 12, 11, 12], "high": [11.0, 12, 13, 12, 13], "low": [9.0, 10, 11, 10, 11],
    ...     "close": [11.0, 12, 11, 12, 13], "volume": [1.0] * 5})
    >>> out = stage.on_bars(bars)
    >>> out.tables["forecasts"].height, out.tables["forecasts"]["close"][-1]
    (3, 13.0)
    """

    name = "forecast"
    outputs = (SIGNALS_TABLE.name, FORECASTS_TABLE.name)

    def __init__(self, config: ForecastConfig | None = None, *, lstm: LSTMForecaster | None = None,
                 history: History | None = None) -> None:
        self.config = config or ForecastConfig()
        self.timeframes = self.config.timeframes
        if self.config.model == "lstm" and (lstm is None or not lstm.is_fitted):
            raise ConfigError("live lstm forecasting needs a trained network (register and promote one with "
                              "`tickwise models train --model lstm` and `tickwise models promote lstm N`)")
        self.lstm = lstm
        self.history = history
        self._fetched: dict[tuple[str, str], pl.DataFrame] = {}  # stored bars read ahead for new series
        self.tracks: dict[tuple[str, str], _Track] = {}
        self.rule = f"forecast.{self.config.model}"
        self.fits = 0
        self.drift_refits = 0
        self.skipped_fits = 0

    def _track(self, symbol: str, timeframe: str) -> _Track:
        track = self.tracks.get((symbol, timeframe))
        if track is None:
            every = self.config.refit_every
            stagger = zlib.crc32(symbol.encode()) % every
            track = _Track(self.config.window, self.config.drift_window, every + stagger)
            self.tracks[(symbol, timeframe)] = track
            past = self._fetched.pop((symbol, timeframe), None)
            if past is not None:  # stored bars read by `_fetch_new`
                track.bars.extend(past.select(_BAR_COLUMNS).to_numpy().astype(np.float64))
                track.last_ts = int(past["ts"].dt.epoch("ns")[-1])
        return track

    def _fetch_new(self, frame: pl.DataFrame) -> None:
        """Read the stored bars of every series new in this call, in one read where the history can."""
        new = new_series(frame, self.tracks) if self.history is not None else []
        past = stored_bars(self.history, new, self.config.window) if new else pl.DataFrame()  # type: ignore[arg-type]
        self._fetched = {(str(s), str(tf)): part for (s, tf), part in past.partition_by(
            "symbol", "timeframe", as_dict=True, maintain_order=True).items()} if past.height else {}

    def revoked(self, timeframe: str) -> None:
        """Forget the series of ``timeframe`` (a rebalance gave its bars to another worker); if
        they come back they start again from stored bars (`StageRunner` calls this)."""
        self.tracks = {k: v for k, v in self.tracks.items() if k[1] != timeframe}

    def _fit(self, track: _Track) -> bool:
        bars = np.asarray(track.bars)
        try:
            model = make_model(self.config.model, **self.config.params).fit(bars)
        except DataError:
            return False  # e.g. a flat series at the open; try again on a later bar
        residuals = getattr(model, "residuals_", None)
        if residuals is None or len(residuals) < 5:
            residuals = np.diff(bars[:, 3])
        residuals = residuals[np.isfinite(residuals)]
        track.model = model
        track.since_fit = 0
        track.fits += 1
        track.errors.clear()
        track.train_mse = float(np.mean(residuals * residuals)) if residuals.size else 0.0
        track.drift_limit = drift_threshold(self.config.drift_window, max(residuals.size, 5), alpha=self.config.drift_alpha)
        if track.fits > 1:
            track.refit_at = self.config.refit_every
        self.fits += 1
        return True

    def _drifted(self, track: _Track) -> bool:
        if len(track.errors) < self.config.drift_window or track.train_mse <= 0.0:
            return False
        recent = np.asarray(track.errors)
        return float(np.mean(recent * recent)) / track.train_mse > track.drift_limit

    def on_bars(self, bars: pl.DataFrame) -> StageOutput:
        frame = bars.filter(pl.col("timeframe").is_in(list(self.timeframes))).sort(["symbol", "timeframe", "ts"])
        if frame.is_empty():
            return StageOutput()
        symbols = frame["symbol"].to_list()
        tfs = frame["timeframe"].to_list()
        stamps = frame["ts"].dt.epoch("ns").to_numpy()
        self._fetch_new(frame)
        values = frame.select(_BAR_COLUMNS).to_numpy().astype(np.float64)
        fits_left = self.config.max_fits_per_call
        now = time.time_ns()
        deadline = time.perf_counter() + self.config.fit_budget_s
        # one row per forecast: (symbol, timeframe, bar ts, last close, o, h, l, c, se, lo80, hi80, lo95, hi95)
        rows: list[tuple[Any, ...]] = []
        repeats: list[tuple[dict[str, Any], dict[str, Any]]] = []
        lstm_keys: list[tuple[str, str, int]] = []
        for i in range(len(symbols)):
            ts = int(stamps[i])
            track = self._track(symbols[i], tfs[i])
            if ts <= track.last_ts:
                if ts == track.last_ts and track.last_rows is not None:
                    repeats.append(track.last_rows)  # redelivered bar: same rows again (idempotent)
                continue
            bar = values[i]
            if fits_left > 0 and time.perf_counter() > deadline:
                fits_left = 0
            if track.pending is not None:
                track.errors.append(bar[3] - track.pending)
            track.bars.append(bar)
            track.last_ts = ts
            track.last_rows = None
            if self.lstm is not None:
                if len(track.bars) > self.lstm.window:
                    lstm_keys.append((symbols[i], tfs[i], ts))
                continue
            if track.model is None:
                if len(track.bars) < self.config.min_bars:
                    continue
                if fits_left <= 0 or not self._fit(track):
                    self.skipped_fits += 1
                    continue
                fits_left -= 1
            else:
                due = track.since_fit + 1 >= track.refit_at
                drifted = self._drifted(track)
                if (due or drifted) and fits_left > 0 and self._fit(track):
                    fits_left -= 1
                    self.drift_refits += int(drifted and not due)
                else:
                    if due or drifted:
                        self.skipped_fits += 1
                    track.model.update(bar)
                    track.since_fit += 1
            f = track.model.predict(1, level=(80, 95))
            track.pending = float(f.mean[0])
            rows.append((symbols[i], tfs[i], ts, bar[3], f.open[0], f.high[0], f.low[0], f.mean[0], f.se[0],
                         f.lo[80][0], f.hi[80][0], f.lo[95][0], f.hi[95][0]))
        if lstm_keys:
            rows.extend(self._lstm_rows(lstm_keys))
        return self._output(rows, repeats, now)

    def _lstm_rows(self, keys: list[tuple[str, str, int]]) -> list[tuple[Any, ...]]:
        assert self.lstm is not None
        histories = [np.asarray(self.tracks[(s, tf)].bars) for s, tf, _ in keys]
        ohlc = self.lstm.predict_next(histories)
        offsets = self.lstm.interval_offsets((80, 95))
        sd = float(np.std(self.lstm.residuals_))
        out = []
        for (s, tf, ts), hist, (o, h, lo, c) in zip(keys, histories, ohlc, strict=True):
            self.tracks[(s, tf)].pending = float(c)
            out.append((s, tf, ts, hist[-1, 3], o, h, lo, c, c * sd,
                        c * np.exp(offsets[80][0]), c * np.exp(offsets[80][1]),
                        c * np.exp(offsets[95][0]), c * np.exp(offsets[95][1])))
        return out

    def _output(self, rows: list[tuple[Any, ...]], repeats: list[tuple[dict[str, Any], dict[str, Any]]], now: int) -> StageOutput:
        if not rows and not repeats:
            return StageOutput()
        cols = list(zip(*rows, strict=True)) if rows else [[] for _ in range(13)]
        symbol, tf, ts, last, o, h, lo, c, se, lo80, hi80, lo95, hi95 = cols
        step = np.array([timeframe_ns(t) for t in tf], dtype=np.int64)
        ts_arr = np.asarray(ts, dtype=np.int64)
        forecast_rows = {
            "symbol": list(symbol), "timeframe": list(tf), "ts": ts_arr + step,
            "model": [self.config.model] * len(rows), "version": [self.config.version] * len(rows),
            "open": np.asarray(o, dtype=np.float64), "high": np.asarray(h, dtype=np.float64),
            "low": np.asarray(lo, dtype=np.float64), "close": np.asarray(c, dtype=np.float64),
            "lo_80": np.asarray(lo80, dtype=np.float64), "hi_80": np.asarray(hi80, dtype=np.float64),
            "lo_95": np.asarray(lo95, dtype=np.float64), "hi_95": np.asarray(hi95, dtype=np.float64),
            "ts_created": np.full(len(rows), now, dtype=np.int64),
        }
        last_arr = np.asarray(last, dtype=np.float64)
        se_arr = np.asarray(se, dtype=np.float64)
        sig = forecast_signals(forecast_rows["close"], last_arr, se_arr, k=self.config.k) if rows else np.array([])
        signal_rows = {
            "symbol": list(symbol), "timeframe": list(tf), "ts": ts_arr, "rule": [self.rule] * len(rows),
            "signal": sig.tolist(),
            "reason": [f"predicted close {p:.6g} vs last {q:.6g}, k*se {self.config.k * e:.4g}"
                       for p, q, e in zip(forecast_rows["close"], last_arr, se_arr, strict=True)],
            "price": last_arr, "fast": [None] * len(rows), "slow": [None] * len(rows),
            "volume_ratio": [None] * len(rows),
        }
        for i in range(len(rows)):
            track = self.tracks[(symbol[i], tf[i])]
            track.last_rows = ({k: v[i] for k, v in forecast_rows.items()}, {k: v[i] for k, v in signal_rows.items()})
        fc = _frame(forecast_rows, [r[0] for r in repeats])
        sg = _frame(signal_rows, [r[1] for r in repeats])
        return StageOutput(
            tables={FORECASTS_TABLE.name: fc, SIGNALS_TABLE.name: sg},
            topics={FORECASTS: [encode_json(_records(fc))], SIGNALS: [encode_json(_records(sg))]},
        )


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: ``ts`` as ISO-8601 UTC plus ``ts_ns`` (what the API's stream reads)."""
    ns = frame["ts"].dt.epoch("ns").to_list()
    plain = frame.with_columns([pl.col(c).dt.epoch("ns") for c in ("ts", "ts_created") if c in frame.columns])
    out = []
    for row, t in zip(plain.to_dicts(), ns, strict=True):
        row["ts"] = (_EPOCH + dt.timedelta(microseconds=t // 1000)).isoformat().replace("+00:00", "Z")
        row["ts_ns"] = t
        out.append(row)
    return out


def _frame(columns: dict[str, Any], extra: list[dict[str, Any]]) -> pl.DataFrame:
    schema = {k: (pl.Datetime("ns", "UTC") if k in ("ts", "ts_created") else
                  pl.Utf8 if k in ("symbol", "timeframe", "model", "version", "rule", "signal", "reason") else
                  pl.Float64) for k in columns}
    frame = pl.DataFrame({k: list(v) if not isinstance(v, np.ndarray) else v for k, v in columns.items()},
                         schema={k: (pl.Int64 if t == pl.Datetime("ns", "UTC") else t) for k, t in schema.items()})
    if extra:
        frame = pl.concat([frame, pl.DataFrame(extra, schema=frame.schema, orient="row")])
    return frame.with_columns([pl.col(k).cast(pl.Datetime("ns", "UTC")) for k, t in schema.items() if t == pl.Datetime("ns", "UTC")])


def make_stage(settings: Any, *, warehouse: Warehouse | None = None) -> ForecastStage:
    """Build the live stage from settings: the promoted registry version of ``forecast_model``;
    with ``warehouse`` (the running one), series start from their stored bars."""
    from tickwise.forecast.registry import ModelRegistry
    from tickwise.store import open_warehouse

    model = settings.forecast_model
    promoted = None
    try:
        if warehouse is not None:
            promoted = ModelRegistry(warehouse).promoted(model)
        else:
            own = open_warehouse(settings.warehouse_url)
            try:
                promoted = ModelRegistry(own).promoted(model)
            finally:
                own.close()
    except BackendError:
        promoted = None  # a locked or unreachable warehouse: run the default parameters
    params: dict[str, Any] = {}
    lstm = None
    version = "default"
    if promoted is not None:
        version = str(promoted.version)
        if model == "lstm":
            lstm = LSTMForecaster.loads(promoted.artifact)
        else:
            params = {k: v for k, v in promoted.params.items() if k not in ("window", "refit_every")}
    config = ForecastConfig(model=model, version=version, params=params, k=settings.forecast_k,
                            window=max(240, (lstm.window + 1) if lstm else 0))
    return ForecastStage(config, lstm=lstm, history=warehouse_history(warehouse) if warehouse is not None else None)
