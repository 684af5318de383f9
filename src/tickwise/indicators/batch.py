"""Indicators over whole NumPy arrays, as compiled loops, with TA-Lib's conventions.

Each function takes float arrays and returns arrays of the same length, NaN exactly where
TA-Lib's Function API returns NaN (the warm-up). The conventions, all TA-Lib's:

- EMA(n): k = 2 / (n + 1), seeded with the SMA of the first n values (first value at n-1).
- RSI(n) and ATR(n): Wilder smoothing (alpha = 1/n), seeded with the plain mean of the first
  n gains/losses (RSI, first value at n) or true ranges 1..n (ATR, first value at n).
  RSI is 0 where average gain + loss is 0 (a series that never moved).
- MACD(f, s, g): both EMAs are seeded at bar s-1: the slow one with the mean of bars 0..s-1,
  the fast one with the mean of bars s-f..s-1; the signal is an EMA(g) of the MACD line seeded
  with the mean of its first g values; all three outputs start at bar s+g-2.
- Bollinger(n, 2): middle is the SMA; the deviation is the population one, computed stably
  (sums taken around the previous window's mean, two passes where they still cancel), so a
  flat window's deviation is at the rounding level of its mean, as in TA-Lib >= 0.6.
- Wilder smoothing and the Bollinger means multiply by 1/n rather than divide by n, in both
  forms: a divide in the loop's dependency chain would make it 2-3x slower.
- OBV starts at the first bar's volume; VWAP (not in TA-Lib) uses the typical price
  (high + low + close) / 3, cumulative from the first bar or over a rolling window.

Each function runs the update of its streaming twin (`tickwise.indicators.streaming`) as a
compiled loop (`tickwise.indicators.kernels`, numba), so batch and streaming give the same
numbers to the last bit (tests/indicators checks it on every bar). Window sums are running
totals re-summed each time the window has moved by its length, so their rounding error
stays bounded however long the series. The first call of each function in a process loads
its compiled loop from numba's on-disk cache (compiling it once per machine).

Examples
--------
>>> import numpy as np
>>> sma(np.array([1.0, 2.0, 3.0, 4.0]), period=2).tolist()
[nan, 1.5, 2.5, 3.5]
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from tickwise.indicators.base import FloatArray, check_period


def _kernels() -> ModuleType:
    # numba loads with the first batch call, so streaming-only users never import it
    from tickwise.indicators import kernels

    return kernels


def _as_float(x: object) -> FloatArray:
    a = np.ascontiguousarray(x, dtype=np.float64)
    # a read-only array (Polars, Arrow) would need a second compiled specialisation
    return a if a.flags.writeable else a.copy()


def _nans(n: int) -> FloatArray:
    return np.full(n, np.nan)


def _check_lengths(close: FloatArray, **others: FloatArray) -> None:
    # the compiled loops index every input by the close's positions
    for name, a in others.items():
        if len(a) != len(close):
            raise ValueError(f"{name} must have the length of close ({len(close)}), was {len(a)}")


def running_sum(x: FloatArray, period: int) -> FloatArray:
    """Window sums with the rounding of a running total: add the newest, output, drop the oldest.

    Bit-identical to a streaming running total taken in that order (TA-Lib's order too), so
    a rule that compares averages gives the same answer in both forms, to the last bit.

    Examples
    --------
    >>> running_sum(np.array([1.0, 2.0, 3.0]), 2).tolist()
    [nan, 3.0, 5.0]
    """
    period = check_period("period", period)
    x = _as_float(x)
    out = np.empty(len(x))
    _kernels().running_sum_kernel(x, period, out)
    return out


def sma(x: FloatArray, *, period: int) -> FloatArray:
    """Simple moving average (TA-Lib ``SMA``).

    Examples
    --------
    >>> sma(np.array([2.0, 4.0, 6.0]), period=3).tolist()
    [nan, nan, 4.0]
    """
    period = check_period("period", period)
    x = _as_float(x)
    out = np.empty(len(x))
    _kernels().sma_kernel(x, period, out)
    return out


def ema(x: FloatArray, *, period: int) -> FloatArray:
    """Exponential moving average seeded with an SMA (TA-Lib ``EMA``).

    Examples
    --------
    >>> ema(np.array([1.0, 2.0, 3.0, 4.0]), period=2).tolist()
    [nan, 1.5, 2.5, 3.5]
    """
    period = check_period("period", period)
    x = _as_float(x)
    out = np.empty(len(x))
    _kernels().ema_kernel(x, period, 2.0 / (period + 1), out)
    return out


def wma(x: FloatArray, *, period: int) -> FloatArray:
    """Linearly weighted moving average, newest weight ``period`` (TA-Lib ``WMA``).

    Examples
    --------
    >>> wma(np.array([1.0, 2.0, 3.0]), period=2).tolist()
    [nan, 1.6666666666666667, 2.6666666666666665]
    """
    period = check_period("period", period)
    x = _as_float(x)
    out = np.empty(len(x))
    _kernels().wma_kernel(x, period, out)
    return out


def rsi(x: FloatArray, *, period: int) -> FloatArray:
    """Relative strength index with Wilder smoothing (TA-Lib ``RSI``).

    Examples
    --------
    >>> rsi(np.array([1.0, 2.0, 1.0, 2.0, 3.0]), period=2).round(6).tolist()
    [nan, nan, 50.0, 75.0, 87.5]
    """
    period = check_period("period", period, minimum=2)
    x = _as_float(x)
    out = np.empty(len(x))
    _kernels().rsi_kernel(x, period, 1.0 / period, out)
    return out


def macd(x: FloatArray, *, fast: int = 12, slow: int = 26, signal: int = 9
         ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """MACD line, signal line and histogram (TA-Lib ``MACD``, including its seeding).

    Examples
    --------
    >>> line, sig, hist = macd(np.arange(1.0, 41.0))
    >>> int(np.isnan(line).sum()), round(float(line[-1]), 6)
    (33, 7.0)
    """
    fast = check_period("fast", fast, minimum=2)
    slow = check_period("slow", slow, minimum=2)
    signal = check_period("signal", signal)
    if fast >= slow:
        raise ValueError(f"fast must be < slow, was fast={fast}, slow={slow}")
    x = _as_float(x)
    line, sig, hist = np.empty(len(x)), np.empty(len(x)), np.empty(len(x))
    _kernels().macd_kernel(x, fast, slow, signal, 2.0 / (fast + 1), 2.0 / (slow + 1),
                        2.0 / (signal + 1), line, sig, hist)
    return line, sig, hist


def bbands(x: FloatArray, *, period: int, nbdev: float = 2.0
           ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bollinger bands (upper, middle, lower) with the population deviation (TA-Lib ``BBANDS``).

    Examples
    --------
    >>> upper, middle, lower = bbands(np.array([1.0, 3.0, 1.0, 3.0]), period=2)
    >>> float(upper[-1]), float(middle[-1]), float(lower[-1])
    (4.0, 2.0, 0.0)
    """
    period = check_period("period", period)
    x = _as_float(x)
    upper, middle, lower = np.empty(len(x)), np.empty(len(x)), np.empty(len(x))
    _kernels().bbands_kernel(x, period, float(nbdev), upper, middle, lower)
    return upper, middle, lower


def true_range(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    """True range; NaN at the first bar, which has no previous close (TA-Lib ``TRANGE``).

    Examples
    --------
    >>> true_range(np.array([2.0, 5.0]), np.array([1.0, 4.0]), np.array([1.5, 4.5])).tolist()
    [nan, 3.5]
    """
    high, low, close = _as_float(high), _as_float(low), _as_float(close)
    out = _nans(len(close))
    if len(close) > 1:
        prev = close[:-1]
        # max(h - l, |h - prev|, |l - prev|) = max(h, prev) - min(l, prev)
        np.subtract(np.maximum(high[1:], prev), np.minimum(low[1:], prev), out=out[1:])
    return out


def atr(high: FloatArray, low: FloatArray, close: FloatArray, *, period: int) -> FloatArray:
    """Average true range with Wilder smoothing (TA-Lib ``ATR``).

    Examples
    --------
    >>> atr(np.array([2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.5, 3.5]),
    ...     period=1).tolist()
    [nan, 1.5, 1.5]
    """
    period = check_period("period", period)
    high, low, close = _as_float(high), _as_float(low), _as_float(close)
    _check_lengths(close, high=high, low=low)
    out = np.empty(len(close))
    _kernels().atr_kernel(high, low, close, period, 1.0 / period, out)
    return out


def obv(close: FloatArray, volume: FloatArray) -> FloatArray:
    """On-balance volume, starting at the first bar's volume (TA-Lib ``OBV``).

    Examples
    --------
    >>> obv(np.array([1.0, 2.0, 2.0, 1.0]), np.array([10.0, 20.0, 30.0, 40.0])).tolist()
    [10.0, 30.0, 30.0, -10.0]
    """
    close, volume = _as_float(close), _as_float(volume)
    _check_lengths(close, volume=volume)
    out = np.empty(len(close))
    _kernels().obv_kernel(close, volume, out)
    return out


def vwap(high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray, *,
         window: int | None = None) -> FloatArray:
    """Volume-weighted typical price, cumulative (``window=None``) or over ``window`` bars.

    NaN where the summed volume is 0.

    Examples
    --------
    >>> vwap(np.array([3.0, 6.0]), np.array([3.0, 6.0]), np.array([3.0, 6.0]),
    ...      np.array([1.0, 2.0])).tolist()
    [3.0, 5.0]
    """
    if window is not None:
        window = check_period("window", window)
    high, low, close, volume = _as_float(high), _as_float(low), _as_float(close), _as_float(volume)
    _check_lengths(close, high=high, low=low, volume=volume)
    out = np.empty(len(close))
    _kernels().vwap_kernel(high, low, close, volume, 0 if window is None else window, out)
    return out
