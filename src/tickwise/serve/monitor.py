"""Watch forecasts meet the bars they predicted, live, and keep the model-error metrics.

`ModelMonitor` is fed the forecast and bar events the API's live stream reads from the bus.
When a bar closes for which a forecast was made, the forecast's error and the random
walk's (the previous close) go into `tickwise.metrics`: `MODEL_ABS_ERROR`,
`FORECASTS_SCORED` (interval hits) and `MODEL_ERROR_RATIO` over the last ``window`` bars,
which the ``TickwiseModelErrorDrift`` alert watches.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from typing import Any

from tickwise import metrics

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def event_ns(value: Any) -> int | None:
    """Read a timestamp given as int ns, a datetime or an ISO string, as int ns.

    Examples
    --------
    >>> event_ns("1970-01-01T00:00:01Z")
    1000000000
    >>> event_ns(5)
    5
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    return None


class ModelMonitor:
    """Score live forecasts against closing bars and publish the error metrics.

    Examples
    --------
    >>> m = ModelMonitor(window=10)
    >>> m.on_bar({"symbol": "X", "timeframe": "1m", "ts": 0, "close": 10.0})
    >>> m.on_forecast({"symbol": "X", "timeframe": "1m", "ts": 60, "model": "naive", "close": 10.5,
    ...                "lo_80": 10.0, "hi_80": 11.0})
    >>> m.on_bar({"symbol": "X", "timeframe": "1m", "ts": 60, "close": 11.0})
    >>> m.error_ratio("X", "1m", "naive")
    0.5
    """

    def __init__(self, *, window: int = 100, max_pending: int = 64) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, was {window}")
        self.window = window
        self.max_pending = max_pending
        self._last_close: dict[tuple[str, str], float] = {}
        # (symbol, timeframe) -> ts -> model -> forecast record
        self._pending: dict[tuple[str, str], dict[int, dict[str, dict[str, Any]]]] = {}
        self._errors: dict[tuple[str, str, str], deque[tuple[float, float]]] = {}

    def on_forecast(self, record: dict[str, Any]) -> None:
        """Remember a forecast until the bar it predicts closes."""
        ts = event_ns(record.get("ts"))
        symbol, timeframe = record.get("symbol"), record.get("timeframe")
        if ts is None or not isinstance(symbol, str) or not isinstance(timeframe, str):
            return
        if not isinstance(record.get("close"), int | float):
            return
        model = str(record.get("model") or "model")
        pending = self._pending.setdefault((symbol, timeframe), {})
        pending.setdefault(ts, {})[model] = record
        while len(pending) > self.max_pending:
            pending.pop(min(pending))

    def on_bar(self, bar: dict[str, Any]) -> None:
        """Score the forecasts made for this bar, then remember its close."""
        ts = event_ns(bar.get("ts"))
        symbol, timeframe, close = bar.get("symbol"), bar.get("timeframe"), bar.get("close")
        if ts is None or not isinstance(symbol, str) or not isinstance(timeframe, str):
            return
        if not isinstance(close, int | float) or close <= 0:
            return
        key = (symbol, timeframe)
        previous = self._last_close.get(key)
        made = self._pending.get(key, {}).pop(ts, {})
        if previous is not None:
            for model, fc in made.items():
                self._score(symbol, timeframe, model, fc, float(close), previous)
        self._last_close[key] = float(close)

    def _score(self, symbol: str, timeframe: str, model: str, fc: dict[str, Any], actual: float,
               previous: float) -> None:
        err = abs(float(fc["close"]) - actual)
        rw_err = abs(previous - actual)
        metrics.MODEL_ABS_ERROR.labels(timeframe, model).observe(err / actual)
        for level in ("80", "95"):
            lo, hi = fc.get(f"lo_{level}"), fc.get(f"hi_{level}")
            if isinstance(lo, int | float) and isinstance(hi, int | float):
                inside = "true" if lo <= actual <= hi else "false"
                metrics.FORECASTS_SCORED.labels(timeframe, model, level, inside).inc()
        errors = self._errors.setdefault((symbol, timeframe, model), deque(maxlen=self.window))
        errors.append((err, rw_err))
        ratio = self.error_ratio(symbol, timeframe, model)
        if ratio is not None:
            metrics.MODEL_ERROR_RATIO.labels(symbol, timeframe, model).set(ratio)

    def error_ratio(self, symbol: str, timeframe: str, model: str) -> float | None:
        """Return model MAE / random-walk MAE over the last ``window`` scored bars."""
        errors = self._errors.get((symbol, timeframe, model))
        if not errors:
            return None
        rw = sum(e[1] for e in errors)
        return sum(e[0] for e in errors) / rw if rw > 0 else None
