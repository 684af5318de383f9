"""Labelled anomalies injected into real bar series, for measuring detectors.

Kinds: ``price_spike`` (one close jumps, the next bar is back), ``level_shift`` (every
price from a bar on moves by a step), ``volume_burst`` (one bar's volume multiplied),
``flash_crash`` (a bar plunges intrabar and closes low, the next bar recovers) and
``frozen_price`` (five bars repeat the previous close: a stale feed). Magnitudes are in
units of the series' own robust scale (1.4826 x MAD of log returns, or of log-volume
changes / sqrt 2), drawn uniformly from ``magnitude``.

One more kind is there to be asked for by name (`EXTRA_KINDS`), outside the default five
that the evaluation's published figures and the classifier's training use: ``bad_print``
(one trade far off the market: the bar's high, or low, reaches out by the magnitude while
its open, close and volume stay as they were; a wick). `tickwise up --faults` showed that
shape, which the default kinds do not make, passing the classifier (docs/anomaly-evaluation.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

KINDS = ("price_spike", "level_shift", "volume_burst", "flash_crash", "frozen_price")
#: Kinds made only when named (not among the defaults above).
EXTRA_KINDS = ("bad_print",)
ALL_KINDS = KINDS + EXTRA_KINDS
_SPAN = {"price_spike": 2, "level_shift": 1, "volume_burst": 1, "flash_crash": 2, "frozen_price": 5, "bad_print": 1}


@dataclass(frozen=True, slots=True)
class Event:
    """One injected anomaly covering rows ``start`` .. ``end`` (inclusive)."""

    kind: str
    start: int
    end: int
    magnitude: float


def _robust_scale(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) or float(np.std(x)) or 1e-3


def inject(bars: pl.DataFrame, *, kinds: Sequence[str] = KINDS, rate: float = 0.01, start: int = 0,
           magnitude: tuple[float, float] = (6.0, 10.0), spacing: int = 20,
           seed: int = 0) -> tuple[pl.DataFrame, list[Event]]:
    """Inject anomalies into one symbol's bars at ``rate`` events per bar after row ``start``.

    Returns the perturbed bars (same rows, same order) and the events, oldest first.

    Examples
    --------
    >>> bars = pl.DataFrame({"open": [10.0] * 300, "high": [10.2] * 300, "low": [9.8] * 300,
    ...                      "close": [10.0 + 0.01 * (i % 3) for i in range(300)],
    ...                      "volume": [1000.0 + i % 7 for i in range(300)]})
    >>> out, events = inject(bars, kinds=["volume_burst"], rate=0.02, start=100, seed=1)
    >>> len(events), all(out["volume"][e.start] > bars["volume"][e.start] for e in events)
    (4, True)
    """
    for k in kinds:
        if k not in ALL_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ALL_KINDS)}, was {k!r}")
    if not 0 < rate <= 1 / spacing:
        raise ValueError(f"rate must be in (0, 1/spacing={1 / spacing:.3f}], was {rate}")
    rng = np.random.default_rng(seed)
    o, h, lo, c, v = (bars.get_column(k).cast(pl.Float64).to_numpy().copy()
                      for k in ("open", "high", "low", "close", "volume"))
    n = c.shape[0]
    sig_r = _robust_scale(np.diff(np.log(c)))
    sig_v = _robust_scale(np.diff(np.log1p(v))) / np.sqrt(2)
    # positions on a jittered grid: exactly the requested rate, never closer than `spacing`
    count = round(rate * (n - start - 6))
    events: list[Event] = []
    if count > 0:
        step = (n - start - 6) / count
        base = start + 1 + np.arange(count) * step
        jitter = rng.uniform(0, max(step - spacing, 0), count)
        positions = np.minimum((base + jitter).astype(int), n - 6)
    else:
        positions = np.array([], dtype=int)
    for t in positions.tolist():
        kind = str(rng.choice(list(kinds)))
        k = float(rng.uniform(*magnitude))
        sign = 1.0 if rng.random() < 0.5 else -1.0
        if kind == "price_spike":
            c[t] *= np.exp(sign * k * sig_r)
            h[t] = max(h[t], c[t], o[t])
            lo[t] = min(lo[t], c[t], o[t])
        elif kind == "level_shift":
            f = np.exp(sign * k * sig_r)
            o[t:] *= f
            h[t:] *= f
            lo[t:] *= f
            c[t:] *= f
        elif kind == "volume_burst":
            v[t] = max(v[t], 1.0) * np.exp(k * sig_v)
        elif kind == "flash_crash":
            drop = np.exp(-k * sig_r)
            lo[t] = min(lo[t], o[t] * drop)
            c[t] = min(c[t], c[t] * np.sqrt(drop))
            h[t] = max(h[t], o[t], c[t])
            v[t] *= 3.0
        elif kind == "bad_print":
            if sign > 0:
                h[t] = max(o[t], c[t]) * np.exp(k * sig_r)
            else:
                lo[t] = min(o[t], c[t]) * np.exp(-k * sig_r)
        else:  # frozen_price
            p = c[t - 1]
            o[t:t + 5] = h[t:t + 5] = lo[t:t + 5] = c[t:t + 5] = p
        events.append(Event(kind, t, t + _SPAN[kind] - 1, k))
    out = bars.with_columns(
        pl.Series("open", o), pl.Series("high", h), pl.Series("low", lo),
        pl.Series("close", c), pl.Series("volume", v),
    )
    return out, events
