"""The market around a bar: what the other symbols did at the same time.

A real market-wide day (an index-expiry Friday's volume, a crash, a thin holiday session)
moves every symbol; a bad print or a feed fault moves one. The classifier therefore reads,
beside a bar's own window, the *cross-section* at the bar's timestamp: the median band
z-score of the other symbols' bars of that same time (return, range, volume, gap, swing)
and the bar's own z-score minus that median. Where no other symbol has a bar at that time
(one series alone, `tickwise detect` on a one-symbol file) these inputs are missing (NaN)
and the classifier scores the bar with its ensemble trained without them
(`tickwise.anomaly.learned`).

The same function serves the live step (the symbols of one `MultiSymbolDetector.step` with
equal timestamps) and the batch form over several series (`score_together`), so the two
agree; nothing after a bar's own timestamp is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tickwise.anomaly.features import BAR_FEATURES

if TYPE_CHECKING:
    import polars as pl

    from tickwise.anomaly.bands import BandOutput
    from tickwise.anomaly.detector import Detector, Scores

FloatArray = np.ndarray
#: market-context inputs per bar: the peers' median z of each bar feature, then own minus it
WIDTH = 2 * len(BAR_FEATURES)
CLIP = 50.0


def uses_context(model: object) -> bool:
    """Whether a model reads the market context (`ClassifierModel` does)."""
    return bool(getattr(model, "uses_context", False))


def loo_median(values: FloatArray, groups: np.ndarray) -> FloatArray:
    """Per row, the median of the *other* rows of its group, per column (NaN for a row alone
    in its group).

    Examples
    --------
    >>> v = np.array([[1.0], [5.0], [3.0], [9.0], [7.0]])
    >>> loo_median(v, np.array([0, 0, 0, 1, 2]))[:, 0].tolist()
    [4.0, 2.0, 3.0, nan, nan]
    """
    n, k = values.shape
    out = np.full((n, k), np.nan)
    if n == 0:
        return out
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    size = counts[inverse]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[inverse]
    m = size - 1  # how many others
    has = m > 0
    k1, k2 = (m - 1) // 2, m // 2
    for c in range(k):
        order = np.lexsort((values[:, c], inverse))
        ranked = values[order, c]
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n) - starts[order]
        # the others' j-th value is the group's j-th, or its (j+1)-th from the row's own rank on
        lo = ranked[np.where(has, starts + k1 + (k1 >= rank), 0)]
        hi = ranked[np.where(has, starts + k2 + (k2 >= rank), 0)]
        out[:, c] = np.where(has, (lo + hi) / 2.0, np.nan)
    return out


def market_context(current: FloatArray, groups: np.ndarray, valid: np.ndarray) -> FloatArray:
    """The market context ``(n, WIDTH)`` of ``n`` bars: ``current`` holds each bar's band
    z-scores of the bar features (``(n, 5)``), ``groups`` its timestamp (bars of equal
    timestamp are each other's peers), ``valid`` whether its z-scores are ready (only ready
    bars are peers, and only they get a context). NaN where a bar has no peer.

    Examples
    --------
    >>> z = np.array([[0.0, 0, 9, 0, 0], [0.0, 0, 1, 0, 0], [0.0, 0, 1, 0, 0]])
    >>> ctx = market_context(z, np.array([5, 5, 5]), np.array([True, True, True]))
    >>> float(ctx[0, 2]), float(ctx[0, 7])  # the others' volume z, and this bar's above it
    (1.0, 8.0)
    >>> bool(np.isnan(market_context(z[:1], np.array([5]), np.array([True]))).all())
    True
    """
    n = current.shape[0]
    out = np.full((n, WIDTH), np.nan)
    idx = np.flatnonzero(valid)
    if idx.size < 2:
        return out
    z = np.clip(np.nan_to_num(current[idx, :len(BAR_FEATURES)]), -CLIP, CLIP)
    med = loo_median(z, np.asarray(groups)[idx])
    out[idx] = np.clip(np.column_stack([med, z - med]), -CLIP, CLIP)
    return out


def contexts(scored: Sequence[tuple[FloatArray, np.ndarray, np.ndarray]]) -> list[FloatArray]:
    """Market contexts of several series at once: each entry is one series' ``(z, ready,
    ts)``; bars of equal ``ts`` across series are peers."""
    if not scored:
        return []
    z = np.vstack([s[0][:, :len(BAR_FEATURES)] for s in scored])
    ready = np.concatenate([s[1] for s in scored])
    ts = np.concatenate([s[2] for s in scored])
    ctx = market_context(z, ts, ready)
    bounds = np.cumsum([0, *(s[0].shape[0] for s in scored)])
    return [ctx[bounds[i]:bounds[i + 1]] for i in range(len(scored))]


def score_together(detectors: Sequence[Detector], frames: Sequence[pl.DataFrame]) -> list[Scores]:
    """Batch-score several series of one timeframe, each with its own detector, as one
    `MultiSymbolDetector` would score them live: a model that reads the market context
    gets, for every bar, the other series' bars of the same timestamp (``ts`` column; a
    series without one is scored alone). Other models score each series alone, as
    `Detector.score` does.

    Examples
    --------
    >>> import polars as pl
    >>> from tickwise.anomaly import make_detector
    >>> rng = np.random.default_rng(0)
    >>> ts = pl.datetime_range(pl.datetime(2020, 1, 1), pl.datetime(2020, 1, 1, 4, 59), "1m", eager=True)
    >>> def bars(seed):
    ...     c = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 1e-3, 300)))
    ...     return pl.DataFrame({"ts": ts, "open": c, "high": c * 1.001, "low": c * 0.999, "close": c,
    ...                          "volume": np.random.default_rng(seed).lognormal(8, 0.3, 300)})
    >>> a, b = score_together([make_detector("zscore"), make_detector("zscore")], [bars(1), bars(2)])
    >>> bool(np.allclose(a.score, make_detector("zscore").score(bars(1)).score, equal_nan=True))
    True
    """
    if len(detectors) != len(frames):
        raise ValueError(f"one detector per series: {len(detectors)} detectors, {len(frames)} series")
    needs = [uses_context(d.model) and "ts" in f.columns for d, f in zip(detectors, frames, strict=True)]
    ctx: list[FloatArray | None] = [None] * len(frames)
    feats: list[tuple[FloatArray, BandOutput] | None] = [None] * len(frames)
    if sum(needs) > 1:
        parts = []
        for i, (d, f, need) in enumerate(zip(detectors, frames, needs, strict=True)):
            if need:
                feats[i] = _, bands = d.features(f)  # once: the context and the score both read it
                parts.append((bands.z, bands.ready, f["ts"].dt.epoch("ns").to_numpy()))
        it = iter(contexts(parts))
        ctx = [next(it) if need else None for need in needs]
    return [d.score(f, context=c, features=x) for d, f, c, x in zip(detectors, frames, ctx, feats, strict=True)]
