"""Compiled loops of the anomaly package (numba): a streaming update run over a whole series.

`season_kernel` is `tickwise.anomaly.seasonal.SeasonBank`'s ``adjust`` then ``learn`` for
one symbol, row after row, with the same operations in the same order, so the batch form
gives the streaming form's numbers. Compiled on first use and cached on disk
(``cache=True``), so only the first run on a machine pays the compile time.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def season_kernel(x, slots, alpha, min_count, clip, max_ratio, n_slots, out):  # type: ignore[no-untyped-def]
    """Time-of-day adjustment of ``x`` (rows × features) into ``out``; see `SeasonBank`."""
    n, f = x.shape
    level = np.zeros((n_slots, f))
    dev = np.full((n_slots, f), np.nan)
    count = np.zeros(n_slots, dtype=np.int64)
    level_sum = np.zeros(f)
    dev_sum = np.zeros(f)
    ready = 0
    for t in range(n):
        s = slots[t]
        c = count[s]
        active = c >= min_count and ready >= 2
        for j in range(f):
            if active:
                nn = max(ready, 1)
                d0 = dev[s, j]
                d0 = max(0.0 if np.isnan(d0) else d0, 1e-12)
                ratio = min(max((dev_sum[j] / nn) / d0, 1.0 / max_ratio), max_ratio)
                out[t, j] = level_sum[j] / nn + (x[t, j] - level[s, j]) * ratio
            else:
                out[t, j] = x[t, j]
        was = c >= min_count
        now = c + 1 >= min_count
        for j in range(f):
            xv = x[t, j]
            lv = level[s, j]
            dv = dev[s, j]
            band = clip * (0.0 if np.isnan(dv) else dv)
            seen = min(max(xv, lv - band), lv + band) if was else xv
            d = abs(seen - lv)
            if c == 0:
                new_level = xv
                new_dev = np.nan
            else:
                new_level = lv + alpha * (seen - lv)
                new_dev = d if np.isnan(dv) else dv + alpha * (d - dv)
            level_sum[j] += (new_level if now else 0.0) - (lv if was else 0.0)
            dev_sum[j] += (new_dev if now else 0.0) - (dv if was else 0.0)
            level[s, j] = new_level
            dev[s, j] = new_dev
        if now and not was:
            ready += 1
        count[s] = c + 1


@njit(cache=True, nogil=True)
def trees_kernel(x, feature, threshold, missing_left, left, right, is_leaf, value, roots, baseline, out):  # type: ignore[no-untyped-def]
    """Sum of the leaf values that ``x``'s rows reach in each tree, plus ``baseline``, into
    ``out``; see `tickwise.anomaly.trees`. Trees outer, rows inner: one tree's nodes stay in
    cache while every row walks it, and each row still adds its trees in their order."""
    n = x.shape[0]
    for i in range(n):
        out[i] = baseline
    for t in range(roots.size):
        root = roots[t]
        for i in range(n):
            k = root
            while not is_leaf[k]:
                v = x[i, feature[k]]
                if np.isnan(v):
                    k = left[k] if missing_left[k] else right[k]
                elif v <= threshold[k]:
                    k = left[k]
                else:
                    k = right[k]
            out[i] += value[k]
