"""Compiled loops behind `tickwise.indicators.batch`: the streaming update, run over an array.

Each kernel is the ``update``/``value`` of its class in `tickwise.indicators.streaming`,
written once more as a loop that numba compiles, with the same operations in the same order.
So the batch form gives the streaming form's numbers to the last bit, at TA-Lib's speed: a
recursion (EMA, Wilder) is a loop-carried dependency that NumPy cannot vectorise, and a
window kept as a running total needs one pass instead of several array temporaries.

Kernels take contiguous float64 arrays and plain ints/floats (one compiled specialisation
each) and write into output arrays the caller allocates with NumPy (which asks the
operating system for huge pages on big arrays: far fewer page faults than numba's own
allocations when writing three 8 MB outputs), NaN where the streaming form is not ready.
They are compiled on first use and cached on disk (``cache=True``), so only the first run
on a machine pays the compile time.

Examples
--------
>>> import numpy as np
>>> out = np.empty(3)
>>> sma_kernel(np.array([1.0, 2.0, 3.0]), 2, out)
>>> out.tolist()
[nan, 1.5, 2.5]
"""

from __future__ import annotations

import numpy as np
from numba import njit

_NAN = np.nan


@njit(cache=True, nogil=True)
def sma_kernel(x, period, out):  # type: ignore[no-untyped-def]
    """`streaming.SMA` over an array: a running total, re-summed each time the ring wraps."""
    n = x.shape[0]
    s = 0.0
    i = 0
    for t in range(n):
        old = x[t - period] if t >= period else 0.0
        s += x[t] - old
        i += 1
        if i == period:
            i = 0
            s = 0.0
            for j in range(t - period + 1, t + 1):
                s += x[j]
        out[t] = s / period if t >= period - 1 else _NAN


@njit(cache=True, nogil=True)
def running_sum_kernel(x, period, out):  # type: ignore[no-untyped-def]
    """Window sums as one running total: add the newest, output, drop the oldest."""
    n = x.shape[0]
    if n < period:
        out[:] = _NAN
        return
    out[: period - 1] = _NAN
    s = x[0]
    for t in range(1, period):
        s += x[t]
    out[period - 1] = s
    for t in range(period, n):
        s -= x[t - period]
        s += x[t]
        out[t] = s


@njit(cache=True, nogil=True)
def ema_kernel(x, period, k, out):  # type: ignore[no-untyped-def]
    """`streaming.EMA` over an array: the mean of the first ``period`` values, then ``v += k (x - v)``."""
    n = x.shape[0]
    v = 0.0
    for t in range(n):
        if t >= period:
            v += k * (x[t] - v)
        elif t < period - 1:
            v += x[t]
        else:
            v = (v + x[t]) / period
        out[t] = v if t >= period - 1 else _NAN


@njit(cache=True, nogil=True)
def wma_kernel(x, period, out):  # type: ignore[no-untyped-def]
    """`streaming.WMA` over an array."""
    n = x.shape[0]
    div = period * (period + 1) / 2
    s = 0.0
    ws = 0.0
    i = 0
    for t in range(n):
        ws += period * x[t] - s
        old = x[t - period] if t >= period else 0.0
        s += x[t] - old
        i += 1
        if i == period:
            i = 0
            s = 0.0
            ws = 0.0
            for j in range(period):
                s += x[t - period + 1 + j]
            for j in range(period):
                ws += (j + 1) * x[t - period + 1 + j]
        out[t] = ws / div if t >= period - 1 else _NAN


@njit(cache=True, nogil=True)
def rsi_kernel(x, period, inv, out):  # type: ignore[no-untyped-def]
    """`streaming.RSI` over an array (Wilder smoothing with ``inv = 1 / period``)."""
    n = x.shape[0]
    gain = 0.0
    loss = 0.0
    for t in range(n):
        if t == 0:
            out[t] = _NAN
            continue
        d = x[t] - x[t - 1]
        if d > 0.0:
            g = d
            lo = 0.0
        else:
            g = 0.0
            lo = -d
        if t > period:
            gain += (g - gain) * inv
            loss += (lo - loss) * inv
        else:
            gain += g
            loss += lo
            if t == period:
                gain /= period
                loss /= period
        if t < period:
            out[t] = _NAN
        else:
            total = gain + loss
            out[t] = 0.0 if total == 0.0 else 100.0 * gain / total


@njit(cache=True, nogil=True)
def macd_kernel(x, fast, slow, signal, kf, ks, kg, line_out, sig_out, hist_out):  # type: ignore[no-untyped-def]
    """`streaming.MACD` over an array: (line, signal, histogram)."""
    n = x.shape[0]
    first = slow + signal - 2  # first bar with a value
    f = 0.0
    s = 0.0
    sig = 0.0
    # warm-up, bar by bar as the streaming form takes it
    for t in range(min(n, first + 1)):
        c = t + 1  # bars seen, the streaming form's counter
        xt = x[t]
        if c > slow:
            f += kf * (xt - f)
            s += ks * (xt - s)
            sig += f - s
            if c == slow + signal - 1:
                sig /= signal
        else:
            s += xt
            if c == slow:
                s /= slow
                f = 0.0
                for j in range(slow - fast, slow):
                    f += x[j]
                f /= fast
                sig = f - s
        line_out[t] = _NAN
        sig_out[t] = _NAN
        hist_out[t] = _NAN
    if n > first:
        line = f - s
        line_out[first] = line
        sig_out[first] = sig
        hist_out[first] = line - sig
    # then one branch-free step per bar: three recursions the CPU runs side by side
    for t in range(first + 1, n):
        xt = x[t]
        f += kf * (xt - f)
        s += ks * (xt - s)
        line = f - s
        sig += kg * (line - sig)
        line_out[t] = line
        sig_out[t] = sig
        hist_out[t] = line - sig


@njit(cache=True, nogil=True)
def bbands_kernel(x, period, nbdev, upper, middle, lower):  # type: ignore[no-untyped-def]
    """`streaming.BollingerBands` over an array: (upper, middle, lower)."""
    n = x.shape[0]
    inv = 1.0 / period
    c = x[0] if n else 0.0
    s = 0.0
    sq = 0.0
    for t in range(min(n, period - 1)):
        y = x[t] - c
        s += y
        sq += y * y
        upper[t] = _NAN
        middle[t] = _NAN
        lower[t] = _NAN
    # one block per turn of the streaming ring buffer: it recentres at the block's last bar
    for last in range(period - 1, n + period - 1, period):
        stop = min(last, n - 1)
        for t in range(max(period - 1, last - period + 1), stop + 1):
            old = x[t - period] - c if t >= period else 0.0
            y = x[t] - c
            s += y - old
            sq += y * y - old * old
            if t == last:
                first = t - period + 1
                acc = 0.0
                for j in range(first, t + 1):
                    acc += x[j]
                c = acc / period
                s = 0.0
                sq = 0.0
                for j in range(first, t + 1):
                    s += x[j] - c
                for j in range(first, t + 1):
                    sq += (x[j] - c) * (x[j] - c)
            shift = s * inv
            mean_sq = sq * inv
            var = mean_sq - shift * shift
            mid = c + shift
            if var <= 1e-4 * mean_sq:
                var = _ring_var(x, t, period)
            dev = np.sqrt(var) * nbdev if var > 0.0 else 0.0
            upper[t] = mid + dev
            middle[t] = mid
            lower[t] = mid - dev


@njit(cache=True, nogil=True)
def _ring_var(x, t, period):  # type: ignore[no-untyped-def]
    # two passes over the window in ring-slot order, as the streaming buffer holds it
    acc = 0.0
    for slot in range(period):
        acc += x[t - (t - slot) % period]
    m = acc / period
    acc = 0.0
    for slot in range(period):
        v = x[t - (t - slot) % period]
        acc += (v - m) * (v - m)
    return acc / period


@njit(cache=True, nogil=True)
def atr_kernel(high, low, close, period, inv, out):  # type: ignore[no-untyped-def]
    """`streaming.ATR` over arrays (Wilder smoothing with ``inv = 1 / period``)."""
    n = close.shape[0]
    atr = 0.0
    for t in range(n):
        if t == 0:
            out[t] = _NAN
            continue
        prev = close[t - 1]
        h = high[t]
        lo = low[t]
        tr = h - lo
        if abs(h - prev) > tr:
            tr = abs(h - prev)
        if abs(lo - prev) > tr:
            tr = abs(lo - prev)
        if t > period:
            atr += (tr - atr) * inv
        else:
            atr += tr
            if t == period:
                atr /= period
        out[t] = atr if t >= period else _NAN


@njit(cache=True, nogil=True)
def obv_kernel(close, volume, out):  # type: ignore[no-untyped-def]
    """`streaming.OBV` over arrays."""
    n = close.shape[0]
    obv = 0.0
    for t in range(n):
        if t == 0:
            obv = volume[0]
        else:
            # +v, -v or 0.0 without a branch (random up/down moves defeat branch prediction);
            # adding 0.0 leaves the total as it was, so the sums are the streaming form's
            up = 1.0 if close[t] > close[t - 1] else 0.0
            down = 1.0 if close[t] < close[t - 1] else 0.0
            obv += (up - down) * volume[t]
        out[t] = obv


@njit(cache=True, nogil=True)
def vwap_kernel(high, low, close, volume, window, out):  # type: ignore[no-untyped-def]
    """`streaming.VWAP` over arrays; ``window <= 0`` means cumulative."""
    n = close.shape[0]
    spv = 0.0
    sv = 0.0
    i = 0
    for t in range(n):
        pv = (high[t] + low[t] + close[t]) / 3.0 * volume[t]
        if window <= 0:
            spv += pv
            sv += volume[t]
            out[t] = spv / sv if sv != 0.0 else _NAN
            continue
        if t >= window:
            j = t - window
            old_pv = (high[j] + low[j] + close[j]) / 3.0 * volume[j]
            old_v = volume[j]
        else:
            old_pv = 0.0
            old_v = 0.0
        spv += pv - old_pv
        sv += volume[t] - old_v
        i += 1
        if i == window:
            i = 0
            spv = 0.0
            sv = 0.0
            for j in range(t - window + 1, t + 1):
                spv += (high[j] + low[j] + close[j]) / 3.0 * volume[j]
            for j in range(t - window + 1, t + 1):
                sv += volume[j]
        out[t] = spv / sv if (t >= window - 1 and sv != 0.0) else _NAN
