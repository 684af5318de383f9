"""Streaming indicators: one small object per indicator and symbol, O(1) per bar.

Each class is the bar-by-bar twin of a function in `tickwise.indicators.batch` and follows
the same TA-Lib conventions (documented there); the batch form runs the same operations in
the same order (`tickwise.indicators.kernels`), so both give the same bits. Running sums are recomputed from the window
each time the ring buffer wraps, so rounding error does not grow over a long stream, at an
amortised O(1) cost.

Examples
--------
>>> sma = SMA(3)
>>> for close in [1.0, 2.0, 3.0, 4.0]:
...     sma.update(close)
>>> sma.value, sma.is_ready
(3.0, True)
"""

from __future__ import annotations

from math import sqrt

from tickwise.indicators.base import NAN, Indicator, check_period


class SMA(Indicator):
    """Simple moving average of one input (``close`` unless told otherwise).

    Examples
    --------
    >>> s = SMA(2, source="volume")
    >>> s.update(10.0); s.update(20.0)
    >>> s.value, s.inputs
    (15.0, ('volume',))
    """

    __slots__ = ("_buf", "_i", "_n", "_sum", "columns", "inputs", "period")

    def __init__(self, period: int, *, source: str = "close", name: str | None = None) -> None:
        self.period = check_period("period", period)
        self.inputs = (source,)
        self.columns = (name or f"sma_{period}",)
        self.reset()

    def reset(self) -> None:
        self._buf = [0.0] * self.period
        self._i = 0
        self._n = 0
        self._sum = 0.0

    def update(self, x: float) -> None:  # type: ignore[override]
        i = self._i
        self._sum += x - self._buf[i]
        self._buf[i] = x
        i += 1
        if i == self.period:
            i = 0
            self._sum = sum(self._buf)
        self._i = i
        self._n += 1

    @property
    def is_ready(self) -> bool:
        return self._n >= self.period

    @property
    def value(self) -> float:
        return self._sum / self.period if self._n >= self.period else NAN

    @property
    def total(self) -> float:
        """Sum of the values in the window (of those seen, while warming up)."""
        return self._sum


class EMA(Indicator):
    """Exponential moving average, k = 2/(n+1), seeded with the SMA of the first n values.

    Examples
    --------
    >>> e = EMA(2)
    >>> for x in [1.0, 2.0, 3.0]:
    ...     e.update(x)
    >>> e.value
    2.5
    """

    __slots__ = ("_k", "_n", "_value", "columns", "period")

    inputs = ("close",)

    def __init__(self, period: int) -> None:
        self.period = check_period("period", period)
        self._k = 2.0 / (period + 1)
        self.columns = (f"ema_{period}",)
        self.reset()

    def reset(self) -> None:
        self._n = 0
        self._value = 0.0

    def update(self, x: float) -> None:  # type: ignore[override]
        n = self._n + 1
        self._n = n
        if n > self.period:
            self._value += self._k * (x - self._value)
        elif n < self.period:
            self._value += x
        else:
            self._value = (self._value + x) / self.period

    @property
    def is_ready(self) -> bool:
        return self._n >= self.period

    @property
    def value(self) -> float:
        return self._value if self._n >= self.period else NAN


class WMA(Indicator):
    """Linearly weighted moving average, the newest value weighted ``period``.

    Examples
    --------
    >>> w = WMA(2)
    >>> w.update(1.0); w.update(2.0)
    >>> round(w.value, 6)
    1.666667
    """

    __slots__ = ("_buf", "_div", "_i", "_n", "_sum", "_wsum", "columns", "period")

    inputs = ("close",)

    def __init__(self, period: int) -> None:
        self.period = check_period("period", period)
        self._div = period * (period + 1) / 2
        self.columns = (f"wma_{period}",)
        self.reset()

    def reset(self) -> None:
        self._buf = [0.0] * self.period
        self._i = 0
        self._n = 0
        self._sum = 0.0
        self._wsum = 0.0

    def update(self, x: float) -> None:  # type: ignore[override]
        p = self.period
        i = self._i
        # shifting every weight down by one subtracts the old plain sum
        self._wsum += p * x - self._sum
        self._sum += x - self._buf[i]
        self._buf[i] = x
        i += 1
        if i == p:
            i = 0
            buf = self._buf
            self._sum = sum(buf)
            self._wsum = sum((j + 1) * buf[j] for j in range(p))
        self._i = i
        self._n += 1

    @property
    def is_ready(self) -> bool:
        return self._n >= self.period

    @property
    def value(self) -> float:
        return self._wsum / self._div if self._n >= self.period else NAN


class RSI(Indicator):
    """Relative strength index with Wilder smoothing; 0 where gain + loss is 0 (TA-Lib).

    Examples
    --------
    >>> r = RSI(2)
    >>> for x in [1.0, 2.0, 1.0, 2.0]:
    ...     r.update(x)
    >>> r.value
    75.0
    """

    __slots__ = ("_gain", "_inv", "_loss", "_n", "_prev", "columns", "period")

    inputs = ("close",)

    def __init__(self, period: int) -> None:
        self.period = check_period("period", period, minimum=2)
        self._inv = 1.0 / period  # a multiply, not a divide, in the batch loop's dependency chain
        self.columns = (f"rsi_{period}",)
        self.reset()

    def reset(self) -> None:
        self._n = 0
        self._prev = 0.0
        self._gain = 0.0
        self._loss = 0.0

    def update(self, x: float) -> None:  # type: ignore[override]
        n = self._n
        self._n = n + 1
        d = x - self._prev
        self._prev = x
        if n == 0:
            return
        p = self.period
        g, lo = (d, 0.0) if d > 0.0 else (0.0, -d)
        if n > p:
            self._gain += (g - self._gain) * self._inv
            self._loss += (lo - self._loss) * self._inv
        else:
            self._gain += g
            self._loss += lo
            if n == p:
                self._gain /= p
                self._loss /= p

    @property
    def is_ready(self) -> bool:
        return self._n > self.period

    @property
    def value(self) -> float:
        if self._n <= self.period:
            return NAN
        total = self._gain + self._loss
        return 0.0 if total == 0.0 else 100.0 * self._gain / total


class MACD(Indicator):
    """MACD line, signal and histogram with TA-Lib's seeding (see `tickwise.indicators.batch`).

    Examples
    --------
    >>> m = MACD()
    >>> for x in range(1, 41):
    ...     m.update(float(x))
    >>> tuple(round(v, 6) for v in m.value)
    (7.0, 7.0, 0.0)
    """

    __slots__ = (
        "_fast",
        "_kf",
        "_kg",
        "_ks",
        "_n",
        "_recent",
        "_sig",
        "_slow",
        "columns",
        "fast",
        "signal",
        "slow",
    )

    inputs = ("close",)

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self.fast = check_period("fast", fast, minimum=2)
        self.slow = check_period("slow", slow, minimum=2)
        self.signal = check_period("signal", signal)
        if fast >= slow:
            raise ValueError(f"fast must be < slow, was fast={fast}, slow={slow}")
        self._kf = 2.0 / (fast + 1)
        self._ks = 2.0 / (slow + 1)
        self._kg = 2.0 / (signal + 1)
        base = "macd" if (fast, slow, signal) == (12, 26, 9) else f"macd_{fast}_{slow}_{signal}"
        self.columns = (base, f"{base}_signal", f"{base}_hist")
        self.reset()

    def reset(self) -> None:
        self._n = 0
        self._fast = 0.0
        self._slow = 0.0
        self._sig = 0.0
        self._recent: list[float] = []

    def update(self, x: float) -> None:  # type: ignore[override]
        n = self._n = self._n + 1
        slow = self.slow
        if n > slow:
            self._fast += self._kf * (x - self._fast)
            self._slow += self._ks * (x - self._slow)
            line = self._fast - self._slow
            if n >= slow + self.signal:
                self._sig += self._kg * (line - self._sig)
            else:
                self._sig += line
                if n == slow + self.signal - 1:
                    self._sig /= self.signal
            return
        self._slow += x
        if n > slow - self.fast:
            self._recent.append(x)
        if n == slow:
            # both EMAs start on the same bar: the fast one from its last `fast` values
            self._slow /= slow
            self._fast = sum(self._recent) / self.fast
            self._recent = []
            self._sig = self._fast - self._slow

    @property
    def is_ready(self) -> bool:
        return self._n >= self.slow + self.signal - 1

    @property
    def value(self) -> tuple[float, float, float]:
        if self._n < self.slow + self.signal - 1:
            return (NAN, NAN, NAN)
        line = self._fast - self._slow
        return (line, self._sig, line - self._sig)


class BollingerBands(Indicator):
    """Bollinger bands (upper, middle, lower): SMA ± nbdev population deviations.

    The running sums are of ``x - c``, with ``c`` moved to the window's mean each time the
    ring buffer wraps, so they stay small; a window where the one-pass variance still cancels
    badly (near-flat prices) is redone in two passes over the buffer.

    Examples
    --------
    >>> bb = BollingerBands(2)
    >>> bb.update(1.0); bb.update(3.0)
    >>> bb.value
    (4.0, 2.0, 0.0)
    """

    __slots__ = ("_buf", "_c", "_i", "_inv", "_n", "_sq", "_sum", "columns", "nbdev", "period")

    inputs = ("close",)

    def __init__(self, period: int, *, nbdev: float = 2.0) -> None:
        self.period = check_period("period", period)
        self.nbdev = float(nbdev)
        self._inv = 1.0 / period
        self.columns = (f"bbands_{period}_upper", f"bbands_{period}_middle", f"bbands_{period}_lower")
        self.reset()

    def reset(self) -> None:
        self._buf = [0.0] * self.period
        self._i = 0
        self._n = 0
        self._c = 0.0  # reference value the sums are taken around
        self._sum = 0.0  # sum of (x - c) over the window
        self._sq = 0.0  # sum of (x - c)² over the window

    def update(self, x: float) -> None:  # type: ignore[override]
        i = self._i
        if self._n == 0:
            self._c = x
        c = self._c
        old = self._buf[i] - c if self._n >= self.period else 0.0
        y = x - c
        self._sum += y - old
        self._sq += y * y - old * old
        self._buf[i] = x
        i += 1
        self._n += 1
        if i == self.period:
            i = 0
            buf = self._buf
            c = self._c = sum(buf) / self.period
            self._sum = sum(v - c for v in buf)
            self._sq = sum((v - c) * (v - c) for v in buf)
        self._i = i

    @property
    def is_ready(self) -> bool:
        return self._n >= self.period

    @property
    def value(self) -> tuple[float, float, float]:
        p = self.period
        if self._n < p:
            return (NAN, NAN, NAN)
        shift = self._sum * self._inv
        mean_sq = self._sq * self._inv
        var = mean_sq - shift * shift
        middle = self._c + shift
        if var <= 1e-4 * mean_sq:
            m = sum(self._buf) / p
            var = sum((v - m) * (v - m) for v in self._buf) / p
        dev = sqrt(var) * self.nbdev if var > 0.0 else 0.0
        return (middle + dev, middle, middle - dev)


class ATR(Indicator):
    """Average true range with Wilder smoothing; first value after ``period + 1`` bars.

    Examples
    --------
    >>> a = ATR(1)
    >>> a.update(2.0, 1.0, 1.5); a.update(3.0, 2.0, 2.5)
    >>> a.value
    1.5
    """

    __slots__ = ("_atr", "_inv", "_n", "_prev", "columns", "period")

    inputs = ("high", "low", "close")

    def __init__(self, period: int) -> None:
        self.period = check_period("period", period)
        self._inv = 1.0 / period
        self.columns = (f"atr_{period}",)
        self.reset()

    def reset(self) -> None:
        self._n = 0
        self._prev = 0.0
        self._atr = 0.0

    def update(self, high: float, low: float, close: float) -> None:  # type: ignore[override]
        n = self._n
        self._n = n + 1
        prev = self._prev
        self._prev = close
        if n == 0:
            return
        tr = high - low
        if abs(high - prev) > tr:
            tr = abs(high - prev)
        if abs(low - prev) > tr:
            tr = abs(low - prev)
        p = self.period
        if n > p:
            self._atr += (tr - self._atr) * self._inv
        else:
            self._atr += tr
            if n == p:
                self._atr /= p

    @property
    def is_ready(self) -> bool:
        return self._n > self.period

    @property
    def value(self) -> float:
        return self._atr if self._n > self.period else NAN


class OBV(Indicator):
    """On-balance volume, starting at the first bar's volume.

    Examples
    --------
    >>> o = OBV()
    >>> o.update(1.0, 10.0); o.update(0.5, 4.0)
    >>> o.value
    6.0
    """

    __slots__ = ("_n", "_obv", "_prev")

    inputs = ("close", "volume")
    columns = ("obv",)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._n = 0
        self._prev = 0.0
        self._obv = 0.0

    def update(self, close: float, volume: float) -> None:  # type: ignore[override]
        if self._n == 0:
            self._obv = volume
        elif close > self._prev:
            self._obv += volume
        elif close < self._prev:
            self._obv -= volume
        self._prev = close
        self._n += 1

    @property
    def is_ready(self) -> bool:
        return self._n > 0

    @property
    def value(self) -> float:
        return self._obv if self._n > 0 else NAN


class VWAP(Indicator):
    """Volume-weighted typical price, cumulative or over the last ``window`` bars.

    NaN while the summed volume is 0.

    Examples
    --------
    >>> v = VWAP()
    >>> v.update(3.0, 3.0, 3.0, 1.0); v.update(6.0, 6.0, 6.0, 2.0)
    >>> v.value
    5.0
    """

    __slots__ = ("_bpv", "_bv", "_i", "_n", "_pv", "_v", "columns", "window")

    inputs = ("high", "low", "close", "volume")

    def __init__(self, window: int | None = None) -> None:
        self.window = None if window is None else check_period("window", window)
        self.columns = ("vwap",) if window is None else (f"vwap_{window}",)
        self.reset()

    def reset(self) -> None:
        w = self.window or 0
        self._bpv = [0.0] * w
        self._bv = [0.0] * w
        self._i = 0
        self._n = 0
        self._pv = 0.0
        self._v = 0.0

    def update(self, high: float, low: float, close: float, volume: float) -> None:  # type: ignore[override]
        pv = (high + low + close) / 3.0 * volume
        self._n += 1
        w = self.window
        if w is None:
            self._pv += pv
            self._v += volume
            return
        i = self._i
        self._pv += pv - self._bpv[i]
        self._v += volume - self._bv[i]
        self._bpv[i] = pv
        self._bv[i] = volume
        i += 1
        if i == w:
            i = 0
            self._pv = sum(self._bpv)
            self._v = sum(self._bv)
        self._i = i

    @property
    def is_ready(self) -> bool:
        return self._n >= (self.window or 1) and self._v != 0.0

    @property
    def value(self) -> float:
        return self._pv / self._v if self.is_ready else NAN
