"""The ``sma_cross`` rule: a fast SMA crossing a slow SMA, confirmed by volume.

The rule, evaluated on each closed bar ``t`` of one (symbol, timeframe) series, bars
numbered from 0 in ``ts`` order:

- ``fast[t]`` = mean of the closes of bars t-fast+1 .. t (the current bar included);
  ``slow[t]`` likewise over ``slow`` bars.
- ``state[t]`` = +1 if ``fast[t] - slow[t] > 1e-9 * |slow[t]|``, -1 if it is below
  ``-1e-9 * |slow[t]|``, else 0 (touching: the band keeps rounding from inventing crosses).
- ``volume_mean[t]`` = mean volume of the ``volume_window`` bars **before** t
  (t-volume_window .. t-1, the current bar excluded, so a spike is compared with what came
  before it). The bar is confirmed when
  ``volume[t] * volume_window > volume_factor * sum(volume[t-volume_window .. t-1])``
  (the same as ``volume[t] > volume_factor * volume_mean[t]``, written without a division so
  that integer volumes compare exactly in any engine).
- BUY when ``state[t-1] <= 0`` and ``state[t] == +1`` and confirmed; SELL when
  ``state[t-1] >= 0`` and ``state[t] == -1`` and confirmed; otherwise HOLD.
- Bars 0 .. max(slow, volume_window) - 1 are the warm-up: HOLD, reason ``warming up``.
- Columns: ``fast`` is null before bar fast-1, ``slow`` before bar slow-1, ``volume_ratio``
  (= volume / volume_mean) before bar volume_window and where ``volume_mean`` is 0.

`SmaCross` is the streaming form (one per series, fed bar by bar); `sma_cross_signals` is
the batch form over a bars frame. Both keep the window sums as running totals with the same
order of rounding (`RunningSum`, `tickwise.indicators.batch.running_sum`), so they give the
same signals, numbers and reasons to the last bit.

Examples
--------
>>> rule = SmaCross(SmaCrossParams(fast=2, slow=3, volume_window=2, volume_factor=1.5))
>>> for close, volume in [(5.0, 10.0), (4.0, 10.0), (3.0, 10.0), (6.0, 40.0)]:
...     rule.update(close, volume)
>>> rule.value.signal, rule.value.reason
('BUY', 'SMA2 4.5 crossed above SMA3 4.33333; volume 4.0x its 2-bar mean')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import polars as pl

from tickwise.indicators.base import check_period
from tickwise.indicators.batch import running_sum

RULE = "sma_cross"
BUY, SELL, HOLD = "BUY", "SELL", "HOLD"
#: relative band within which the two averages count as touching
TOUCH = 1e-9

SIGNAL_COLUMNS = ("symbol", "timeframe", "ts", "rule", "signal", "reason", "price", "fast", "slow",
                  "volume_ratio")


@dataclass(frozen=True, slots=True, kw_only=True)
class SmaCrossParams:
    """Parameters of the ``sma_cross`` rule.

    Examples
    --------
    >>> SmaCrossParams().warmup
    21
    """

    fast: int = 9
    slow: int = 21
    volume_window: int = 20
    volume_factor: float = 1.5

    def __post_init__(self) -> None:
        check_period("fast", self.fast)
        check_period("slow", self.slow)
        check_period("volume_window", self.volume_window)
        if self.fast >= self.slow:
            raise ValueError(f"fast must be < slow, was fast={self.fast}, slow={self.slow}")
        if not (math.isfinite(self.volume_factor) and self.volume_factor >= 0):
            raise ValueError(f"volume_factor must be finite and >= 0, was {self.volume_factor}")

    @property
    def warmup(self) -> int:
        """Bars before the first evaluated one."""
        return max(self.slow, self.volume_window)


class SignalValue(NamedTuple):
    """The rule's verdict on one bar."""

    signal: str
    reason: str
    fast: float | None
    slow: float | None
    volume_ratio: float | None


def _num(x: float) -> str:
    return f"{x:.6g}"


def _state(fast: float, slow: float) -> int:
    band = TOUCH * abs(slow)
    return 1 if fast - slow > band else (-1 if fast - slow < -band else 0)


def decide(params: SmaCrossParams, *, index: int, fast: float, slow: float, prev_state: int,
           volume: float, volume_sum: float) -> tuple[str, str, int, float | None]:
    """Judge one bar; return (signal, reason, state, volume_ratio). Shared by both forms."""
    p = params
    state = _state(fast, slow)
    mean = volume_sum / p.volume_window
    ratio = volume / mean if mean > 0 else None
    if index < p.warmup:
        return HOLD, f"warming up: {index + 1} of {p.warmup + 1} bars", state, ratio
    confirmed = volume * p.volume_window > p.volume_factor * volume_sum
    crossed = "above" if prev_state <= 0 < state else ("below" if state < 0 <= prev_state else "")
    names = f"SMA{p.fast} {_num(fast)}", f"SMA{p.slow} {_num(slow)}"
    vol = (f"volume {ratio:.1f}x its {p.volume_window}-bar mean" if ratio is not None
           else f"volume {_num(volume)} against a zero {p.volume_window}-bar mean")
    if not crossed:
        where = {1: "above", -1: "below", 0: "touching"}[state]
        return HOLD, f"no cross: {names[0]} {where} {names[1]}", state, ratio
    if confirmed:
        return (BUY if crossed == "above" else SELL), f"{names[0]} crossed {crossed} {names[1]}; {vol}", state, ratio
    return (HOLD, f"{names[0]} crossed {crossed} {names[1]} but {vol} is not above "
                  f"{p.volume_factor:g}x", state, ratio)


class RunningSum:
    """A window sum kept as a running total, bit-identical to `running_sum` in batch.

    Examples
    --------
    >>> s = RunningSum(2)
    >>> for x in [1.0, 2.0, 3.0]:
    ...     s.update(x)
    >>> s.total
    5.0
    """

    __slots__ = ("_buf", "_carry", "_i", "_n", "period", "total")

    def __init__(self, period: int) -> None:
        self.period = check_period("period", period)
        self._buf = [0.0] * period
        self._i = 0
        self._n = 0
        self._carry = 0.0  # sum of the newest period-1 values
        self.total = math.nan

    def update(self, x: float) -> None:
        total = self._carry + x
        i = self._i
        self._buf[i] = x
        i += 1
        if i == self.period:
            i = 0
        self._i = i
        self._n += 1
        if self._n >= self.period:
            self.total = total
            total -= self._buf[i]  # the oldest value of the window just closed
        self._carry = total

    @property
    def is_ready(self) -> bool:
        return self._n >= self.period


class SmaCross:
    """Streaming ``sma_cross`` for one series: ``update(close, volume)``, then read ``value``.

    Examples
    --------
    >>> rule = SmaCross()
    >>> rule.update(100.0, 1000.0)
    >>> rule.value.signal, rule.value.reason
    ('HOLD', 'warming up: 1 of 22 bars')
    """

    __slots__ = ("_fast", "_index", "_prev_state", "_slow", "_value", "_volume", "params")

    def __init__(self, params: SmaCrossParams | None = None) -> None:
        self.params = params or SmaCrossParams()
        self.reset()

    def reset(self) -> None:
        p = self.params
        self._fast = RunningSum(p.fast)
        self._slow = RunningSum(p.slow)
        self._volume = RunningSum(p.volume_window)
        self._index = -1
        self._prev_state = 0
        self._value = SignalValue(HOLD, "no bars yet", None, None, None)

    def update(self, close: float, volume: float) -> None:
        p = self.params
        # the volume mean of the bars before this one
        volume_sum = self._volume.total if self._volume.is_ready else math.nan
        self._volume.update(volume)
        self._fast.update(close)
        self._slow.update(close)
        self._index += 1
        fast = self._fast.total / p.fast if self._fast.is_ready else None
        slow = self._slow.total / p.slow if self._slow.is_ready else None
        if fast is None or slow is None:
            self._value = SignalValue(HOLD, f"warming up: {self._index + 1} of {p.warmup + 1} bars",
                                      fast, None, None)
            return
        if math.isnan(volume_sum):
            volume_sum = 0.0
        signal, reason, state, ratio = decide(p, index=self._index, fast=fast, slow=slow,
                                              prev_state=self._prev_state, volume=volume,
                                              volume_sum=volume_sum)
        self._prev_state = state
        if self._index < p.volume_window:
            ratio = None
        self._value = SignalValue(signal, reason, fast, slow, ratio)

    @property
    def value(self) -> SignalValue:
        """The verdict on the last bar."""
        return self._value

    @property
    def bars_seen(self) -> int:
        return self._index + 1


def sma_cross_signals(bars: pl.DataFrame, *, fast: int = 9, slow: int = 21, volume_window: int = 20,
                      volume_factor: float = 1.5) -> pl.DataFrame:
    """Batch ``sma_cross`` over a bars frame: one row per bar, per (symbol, timeframe) in ts order.

    Returns the columns of the ``signals`` table: symbol, timeframe, ts, rule, signal, reason,
    price (the close), fast, slow, volume_ratio.

    Examples
    --------
    >>> bars = pl.DataFrame({"symbol": "X", "timeframe": "1d", "ts": [1, 2, 3, 4],
    ...                      "close": [5.0, 4.0, 3.0, 6.0], "volume": [10.0, 10.0, 10.0, 40.0]})
    >>> sma_cross_signals(bars, fast=2, slow=3, volume_window=2)["signal"].to_list()
    ['HOLD', 'HOLD', 'HOLD', 'BUY']
    """
    p = SmaCrossParams(fast=fast, slow=slow, volume_window=volume_window, volume_factor=volume_factor)
    if "timeframe" not in bars.columns:
        bars = bars.with_columns(timeframe=pl.lit(""))
    frame = bars.sort(["symbol", "timeframe", "ts"], maintain_order=True)
    close = frame["close"].cast(pl.Float64).to_numpy()
    volume = frame["volume"].cast(pl.Float64).to_numpy()
    lengths = frame.group_by(["symbol", "timeframe"], maintain_order=True).len()["len"].to_list()
    n = frame.height
    fast_v, slow_v, vsum = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    index = np.empty(n, dtype=np.int64)
    lo = 0
    for length in lengths:
        hi = lo + length
        fast_v[lo:hi] = running_sum(close[lo:hi], p.fast) / p.fast
        slow_v[lo:hi] = running_sum(close[lo:hi], p.slow) / p.slow
        if length > p.volume_window:
            vsum[lo + p.volume_window : hi] = running_sum(volume[lo:hi - 1], p.volume_window)[p.volume_window - 1 :]
        index[lo:hi] = np.arange(length)
        lo = hi
    band = TOUCH * np.abs(slow_v)
    diff = fast_v - slow_v
    state = np.where(diff > band, 1, np.where(diff < -band, -1, 0))
    prev = np.concatenate([[0], state[:-1]])
    prev[index == 0] = 0
    warm = index >= p.warmup
    confirmed = volume * p.volume_window > p.volume_factor * vsum
    buy = warm & (prev <= 0) & (state == 1) & confirmed
    sell = warm & (prev >= 0) & (state == -1) & confirmed
    signal = np.where(buy, BUY, np.where(sell, SELL, HOLD))
    # reasons are text for people: one shared formatter keeps both forms word for word equal
    reasons = []
    for i in range(n):
        if np.isnan(slow_v[i]):
            reasons.append(f"warming up: {index[i] + 1} of {p.warmup + 1} bars")
            continue
        vs = 0.0 if np.isnan(vsum[i]) else float(vsum[i])
        reasons.append(decide(p, index=int(index[i]), fast=float(fast_v[i]), slow=float(slow_v[i]),
                              prev_state=int(prev[i]) if index[i] > 0 else 0,
                              volume=float(volume[i]), volume_sum=vs)[1])
    mean = vsum / p.volume_window
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mean > 0, volume / mean, np.nan)
    return pl.DataFrame({
        "symbol": frame["symbol"],
        "timeframe": frame["timeframe"],
        "ts": frame["ts"],
        "rule": pl.Series([RULE] * n, dtype=pl.String),
        "signal": pl.Series(signal.tolist(), dtype=pl.String),
        "reason": pl.Series(reasons, dtype=pl.String),
        "price": close,
        "fast": pl.Series(fast_v).fill_nan(None),
        "slow": pl.Series(slow_v).fill_nan(None),
        "volume_ratio": pl.Series(ratio).fill_nan(None),
    })
