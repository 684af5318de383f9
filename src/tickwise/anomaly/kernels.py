"""Compiled loops of the anomaly package (numba): a streaming update run over a whole series.

`season_kernel` is `tickwise.anomaly.seasonal.SeasonBank`'s ``adjust`` then ``learn`` for
one symbol, row after row, with the same operations in the same order, so the batch form
gives the streaming form's numbers. Compiled on first use and cached on disk
(``cache=True``), so only the first run on a machine pays the compile time.
"""

from __future__ import annotations

import math

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


@njit(cache=True, nogil=True)
def stale_surprise(run, k_start, n_moving, k_cont, n_flat):  # type: ignore[no-untyped-def]
    """-log10 of the predictive probability that a flat run starts at a bar and lasts ``run``
    bars, given the counts (a moving bar followed by ``k_start`` flat and ``n_moving`` moving
    ones; a flat bar followed by ``k_cont`` flat ones out of ``n_flat``), each rate with a
    uniform prior; the continuation's uncertainty is kept (its Beta posterior's moment
    E[p^(run-1)]), so a window that has seen few flat bars does not overstate a run."""
    if run < 1:
        return 0.0
    p_start = (k_start + 1.0) / (n_moving + k_start + 2.0)
    a = k_cont + 1.0
    b = n_flat - k_cont + 1.0
    m = run - 1.0
    log_moment = math.lgamma(a + m) - math.lgamma(a + b + m) - math.lgamma(a) + math.lgamma(a + b)
    return -math.log10(p_start) - log_moment / math.log(10.0)


@njit(cache=True, nogil=True)
def stale_kernel(windows, moves, level, out):  # type: ignore[no-untyped-def]
    """Per window of raw feature rows (``windows``: m × bars × features, oldest bar first; a bar
    is flat when every feature of ``moves`` is 0, missing when one is NaN): the flat run it ends with, its
    `stale_surprise`, and the counts of the bars before that run (k_start, n_moving, k_cont,
    n_flat), into ``out`` (m × 6); see `tickwise.anomaly.stale`. The history's runs are taken
    shortest first: a run whose length scores above ``level`` against the moving bars and the
    shorter runs is an anomaly, and so is every longer one; they are left out of the counts
    (an anomaly is not learned)."""
    m, n = windows.shape[0], windows.shape[1]
    lengths = np.empty(n, dtype=np.int64)
    starts = np.empty(n)
    ends = np.empty(n)
    flat = np.empty(n, dtype=np.bool_)
    valid = np.empty(n, dtype=np.bool_)
    for row in range(m):
        for j in range(n):
            ok = True
            still = True
            for c in moves:
                v = windows[row, j, c]
                if np.isnan(v):
                    ok = False
                elif v != 0.0:
                    still = False
            valid[j] = ok
            flat[j] = ok and still
        run = 0
        while run < n and flat[n - 1 - run]:  # flat implies valid
            run += 1
        end = n - run  # history: bars [0, end)
        n_moving = 0.0  # pairs from a moving bar to a moving one
        runs = 0
        j = 0
        while j < end:
            if not valid[j]:
                j += 1
                continue
            if not flat[j]:
                if j + 1 < end and valid[j + 1] and not flat[j + 1]:
                    n_moving += 1.0
                j += 1
                continue
            k = j
            while k < end and flat[k]:
                k += 1
            lengths[runs] = k - j
            starts[runs] = 1.0 if j > 0 and valid[j - 1] else 0.0  # the moving bar before it
            ends[runs] = 1.0 if k < end and valid[k] else 0.0  # the moving bar after it
            runs += 1
            j = k
        k_start = 0.0
        n_flat = 0.0  # pairs from a flat bar, and of those to a flat one
        k_cont = 0.0
        order = np.argsort(lengths[:runs], kind="mergesort")
        a = 0
        while a < runs:
            size = lengths[order[a]]
            if stale_surprise(size, k_start, n_moving, k_cont, n_flat) > level:
                break
            while a < runs and lengths[order[a]] == size:
                r = order[a]
                k_start += starts[r]
                k_cont += size - 1.0
                n_flat += size - 1.0 + ends[r]
                a += 1
        out[row, 0] = run
        out[row, 1] = stale_surprise(run, k_start, n_moving, k_cont, n_flat)
        out[row, 2] = k_start
        out[row, 3] = n_moving
        out[row, 4] = k_cont
        out[row, 5] = n_flat
