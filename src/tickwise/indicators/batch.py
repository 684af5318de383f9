"""Indicators over whole NumPy arrays, vectorised, with TA-Lib's conventions.

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
  (a flat window gives exactly 0, as in TA-Lib >= 0.6).
- OBV starts at the first bar's volume; VWAP (not in TA-Lib) uses the typical price
  (high + low + close) / 3, cumulative from the first bar or over a rolling window.

Recursions (EMA, Wilder) run in C through `scipy.signal.lfilter`; windows use a blockwise
cumulative sum whose rounding error stays bounded however long the series.

Examples
--------
>>> import numpy as np
>>> sma(np.array([1.0, 2.0, 3.0, 4.0]), period=2).tolist()
[nan, 1.5, 2.5, 3.5]
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from tickwise.indicators.base import FloatArray, check_period

#: Rows per block of the cumulative sum: bounds its rounding error by the block, not the series.
_BLOCK = 1 << 16


def _as_float(x: object) -> FloatArray:
    return np.ascontiguousarray(x, dtype=np.float64)


def _nans(n: int) -> FloatArray:
    return np.full(n, np.nan)


def rolling_sum(x: FloatArray, period: int) -> FloatArray:
    """Return the sum of each window of ``period`` values ending at each bar (NaN before).

    Examples
    --------
    >>> rolling_sum(np.array([1.0, 2.0, 3.0]), 2).tolist()
    [nan, 3.0, 5.0]
    """
    x = _as_float(x)
    n = len(x)
    out = _nans(n)
    for start in range(period - 1, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        c = np.cumsum(x[start - period + 1 : stop])
        out[start] = c[period - 1]
        np.subtract(c[period:], c[:-period], out=out[start + 1 : stop])
    return out


def running_sum(x: FloatArray, period: int) -> FloatArray:
    """Window sums with the rounding of a running total: add the newest, output, drop the oldest.

    Bit-identical to a streaming running total taken in that order (TA-Lib's order too), so
    a rule that compares averages gives the same answer in both forms, to the last bit.

    Examples
    --------
    >>> running_sum(np.array([1.0, 2.0, 3.0]), 2).tolist()
    [nan, 3.0, 5.0]
    """
    check_period("period", period)
    x = _as_float(x)
    n = len(x)
    out = _nans(n)
    if n < period:
        return out
    steps = np.empty(period + 2 * (n - period))
    steps[:period] = x[:period]
    steps[period::2] = -x[: n - period]
    steps[period + 1 :: 2] = x[period:]
    out[period - 1 :] = np.add.accumulate(steps)[period - 1 :: 2]
    return out


def _recursive(x: FloatArray, start: int, seed: float, alpha: float) -> FloatArray:
    """y[start] = seed, then y[t] = y[t-1] + alpha * (x[t] - y[t-1]); NaN before start."""
    out = _nans(len(x))
    if start >= len(x):
        return out
    out[start] = seed
    if start + 1 < len(x):
        beta = 1.0 - alpha
        out[start + 1 :], _ = lfilter([alpha], [1.0, -beta], x[start + 1 :], zi=[beta * seed])
    return out


def sma(x: FloatArray, *, period: int) -> FloatArray:
    """Simple moving average (TA-Lib ``SMA``).

    Examples
    --------
    >>> sma(np.array([2.0, 4.0, 6.0]), period=3).tolist()
    [nan, nan, 4.0]
    """
    check_period("period", period)
    return rolling_sum(x, period) / period


def ema(x: FloatArray, *, period: int) -> FloatArray:
    """Exponential moving average seeded with an SMA (TA-Lib ``EMA``).

    Examples
    --------
    >>> ema(np.array([1.0, 2.0, 3.0, 4.0]), period=2).tolist()
    [nan, 1.5, 2.5, 3.5]
    """
    check_period("period", period)
    x = _as_float(x)
    if len(x) < period:
        return _nans(len(x))
    return _recursive(x, period - 1, float(np.mean(x[:period])), 2.0 / (period + 1))


def wma(x: FloatArray, *, period: int) -> FloatArray:
    """Linearly weighted moving average, newest weight ``period`` (TA-Lib ``WMA``).

    Examples
    --------
    >>> wma(np.array([1.0, 2.0, 3.0]), period=2).tolist()
    [nan, 1.6666666666666667, 2.6666666666666665]
    """
    check_period("period", period)
    x = _as_float(x)
    out = _nans(len(x))
    if len(x) >= period:
        weights = np.arange(period, 0, -1, dtype=np.float64)
        out[period - 1 :] = np.convolve(x, weights, mode="valid") / (period * (period + 1) / 2)
    return out


def _wilder_mean(values: FloatArray, period: int, first: int) -> FloatArray:
    """Wilder average over ``values`` whose first defined item is at ``first``; seed at first+period-1."""
    seed_at = first + period - 1
    if seed_at >= len(values):
        return _nans(len(values))
    seed = float(np.mean(values[first : seed_at + 1]))
    return _recursive(values, seed_at, seed, 1.0 / period)


def rsi(x: FloatArray, *, period: int) -> FloatArray:
    """Relative strength index with Wilder smoothing (TA-Lib ``RSI``).

    Examples
    --------
    >>> rsi(np.array([1.0, 2.0, 1.0, 2.0, 3.0]), period=2).round(6).tolist()
    [nan, nan, 50.0, 75.0, 87.5]
    """
    check_period("period", period, minimum=2)
    x = _as_float(x)
    n = len(x)
    if n <= period:
        return _nans(n)
    diff = np.empty(n)
    diff[0] = 0.0
    np.subtract(x[1:], x[:-1], out=diff[1:])
    gain = _wilder_mean(np.maximum(diff, 0.0), period, 1)
    # gain + loss is the Wilder mean of |diff| (the smoothing is linear)
    total = _wilder_mean(np.abs(diff, out=diff), period, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.multiply(gain, 100.0, out=gain)
        out /= total
    out[total == 0.0] = 0.0
    out[:period] = np.nan
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
    check_period("fast", fast, minimum=2)
    check_period("slow", slow, minimum=2)
    check_period("signal", signal)
    if fast >= slow:
        raise ValueError(f"fast must be < slow, was fast={fast}, slow={slow}")
    x = _as_float(x)
    n = len(x)
    first = slow + signal - 2
    if n <= first:
        return _nans(n), _nans(n), _nans(n)
    at = slow - 1
    fast_ema = _recursive(x, at, float(np.mean(x[slow - fast : slow])), 2.0 / (fast + 1))
    slow_ema = _recursive(x, at, float(np.mean(x[:slow])), 2.0 / (slow + 1))
    line = fast_ema - slow_ema
    sig = _recursive(line, first, float(np.mean(line[at : first + 1])), 2.0 / (signal + 1))
    line[:first] = np.nan
    return line, sig, line - sig


#: Where the one-pass variance loses more than this share of its digits, take two passes.
_ILL_CONDITIONED = 1e-4
#: Rows per block of the Bollinger sums; each block is centred on its own reference value.
_BB_BLOCK = 16384


def rolling_var(x: FloatArray, period: int) -> FloatArray:
    """Population variance of each window of ``period`` values (NaN before).

    One pass over sums of ``x - c``, with ``c`` re-chosen every few thousand rows so the
    sums stay small; windows where that still cancels badly (near-flat prices) are redone
    with two passes, so a flat window has a variance of 0 (as TA-Lib's, which is stable too).

    Examples
    --------
    >>> rolling_var(np.array([1.0, 3.0, 3.0]), 2).tolist()
    [nan, 1.0, 0.0]
    """
    x = _as_float(x)
    n = len(x)
    out = _nans(n)
    for start in range(period - 1, n, _BB_BLOCK):
        stop = min(start + _BB_BLOCK, n)
        seg = x[start - period + 1 : stop]
        y = seg - seg[0]  # a reference from the past: no value depends on a later one
        c1 = np.cumsum(y)
        c2 = np.cumsum(np.multiply(y, y, out=y))
        s1, s2 = c1[period - 1 :], c2[period - 1 :]
        s1[1:] -= c1[:-period]
        s2[1:] -= c2[:-period]
        mean_sq = np.divide(s2, period, out=s2)
        s1 /= period
        var = mean_sq - s1 * s1
        redo = np.flatnonzero(var <= _ILL_CONDITIONED * mean_sq)
        if len(redo):
            windows = np.lib.stride_tricks.sliding_window_view(seg, period)[redo]
            centred = windows - windows.mean(axis=1, keepdims=True)
            var[redo] = np.einsum("ij,ij->i", centred, centred) / period
        out[start:stop] = var
    return out


def bbands(x: FloatArray, *, period: int, nbdev: float = 2.0
           ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bollinger bands (upper, middle, lower) with the population deviation (TA-Lib ``BBANDS``).

    Examples
    --------
    >>> upper, middle, lower = bbands(np.array([1.0, 3.0, 1.0, 3.0]), period=2)
    >>> float(upper[-1]), float(middle[-1]), float(lower[-1])
    (4.0, 2.0, 0.0)
    """
    check_period("period", period)
    x = _as_float(x)
    middle = rolling_sum(x, period) / period
    dev = np.sqrt(np.maximum(rolling_var(x, period), 0.0)) * nbdev
    return middle + dev, middle, middle - dev


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
    check_period("period", period)
    tr = true_range(high, low, close)
    return _wilder_mean(tr, period, 1)


def obv(close: FloatArray, volume: FloatArray) -> FloatArray:
    """On-balance volume, starting at the first bar's volume (TA-Lib ``OBV``).

    Examples
    --------
    >>> obv(np.array([1.0, 2.0, 2.0, 1.0]), np.array([10.0, 20.0, 30.0, 40.0])).tolist()
    [10.0, 30.0, 30.0, -10.0]
    """
    close, volume = _as_float(close), _as_float(volume)
    if len(close) == 0:
        return _nans(0)
    step = np.empty(len(close))
    step[0] = volume[0]
    step[1:] = np.sign(close[1:] - close[:-1]) * volume[1:]
    return np.cumsum(step)


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
    high, low, close, volume = _as_float(high), _as_float(low), _as_float(close), _as_float(volume)
    pv = (high + low + close) / 3.0 * volume
    if window is None:
        num, den = np.cumsum(pv), np.cumsum(volume)
    else:
        check_period("window", window)
        num, den = rolling_sum(pv, window), rolling_sum(volume, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den == 0.0, np.nan, num / den)
