"""Rolling and EWMA z-score bands: each raw feature measured against its own past.

At row t the centre and scale come from rows before t only (score before learn). What a
band learns is winsorised: once ready, a value enters the window clipped to
``centre ± clip * scale``, so one injected 10-sigma spike does not inflate the scale and hide
the next anomaly for a whole window. Two forms give the same numbers: `band_zscores`
(one series, batch) and `BandBank` (many symbols, vectorised streaming; one row per symbol).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

FloatArray = np.ndarray
#: Scales below this are treated as this (a constant history).
MIN_SCALE = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class Bands:
    """Band settings.

    Parameters
    ----------
    method
        ``"rolling"`` (mean and standard deviation of the last ``window`` values) or
        ``"ewma"`` (exponentially weighted, ``alpha = 2 / (window + 1)``).
    window
        Length of the rolling window, or span of the EWMA.
    clip
        Values are learned clipped to ``centre ± clip * scale`` once the band is ready.
    min_periods
        Rows needed before z-scores are reported (0 before).
    links
        ``(feature, reference, factor)``: a feature's scale is at least ``factor`` times the
        reference feature's scale (a bar's gap is measured against at least the return
        scale, so a series whose opens always equal the previous close stays sane).

    Examples
    --------
    >>> Bands(method="ewma", window=39).alpha
    0.05
    """

    method: str = "rolling"
    window: int = 60
    clip: float = 4.0
    min_periods: int = 20
    links: tuple[tuple[int, int, float], ...] = ()

    def __post_init__(self) -> None:
        if self.method not in ("rolling", "ewma"):
            raise ValueError(f"method must be 'rolling' or 'ewma', was {self.method!r}")
        if self.window < 2:
            raise ValueError(f"window must be >= 2, was {self.window}")
        if not 2 <= self.min_periods <= max(self.window, 2):
            raise ValueError(f"min_periods must be in [2, window], was {self.min_periods}")
        if not self.clip > 0:
            raise ValueError(f"clip must be > 0, was {self.clip}")

    @property
    def alpha(self) -> float:
        return 2.0 / (self.window + 1)


@dataclass(frozen=True, slots=True)
class BandOutput:
    """Per row: z-score, centre, scale, and whether the band was ready."""

    z: FloatArray
    center: FloatArray
    scale: FloatArray
    ready: np.ndarray


def _floored(scale: FloatArray, links: tuple[tuple[int, int, float], ...]) -> FloatArray:
    scale = np.maximum(scale, MIN_SCALE)
    for i, j, factor in links:
        scale[..., i] = np.maximum(scale[..., i], factor * scale[..., j])
    return scale


def band_zscores(raw: FloatArray, bands: Bands) -> BandOutput:
    """Z-score every row of one series against the rows before it.

    Examples
    --------
    >>> x = np.r_[np.tile([1.0, 2.0], 20), 9.0].reshape(-1, 1)
    >>> out = band_zscores(x, Bands(window=20, min_periods=10))
    >>> round(float(out.z[-1, 0]), 1)
    15.0
    """
    raw = np.asarray(raw, dtype=np.float64)
    n, f = raw.shape
    z = np.zeros((n, f))
    center = np.zeros((n, f))
    scale = np.zeros((n, f))
    ready = np.zeros(n, dtype=bool)
    learned = np.empty((n, f))
    if bands.method == "rolling":
        for t in range(n):
            win = learned[max(0, t - bands.window):t]
            if t:
                center[t] = win.mean(axis=0)
                scale[t] = np.sqrt(win.var(axis=0))
            scale[t] = _floored(scale[t], bands.links)
            is_ready = t >= bands.min_periods
            ready[t] = is_ready
            x = raw[t]
            if is_ready:
                z[t] = (x - center[t]) / scale[t]
                lim = bands.clip * scale[t]
                x = np.clip(x, center[t] - lim, center[t] + lim)
            learned[t] = x
    else:
        mean = np.zeros(f)
        var = np.zeros(f)
        for t in range(n):
            center[t] = mean
            scale[t] = _floored(np.sqrt(var), bands.links)
            is_ready = t >= bands.min_periods
            ready[t] = is_ready
            x = raw[t]
            if is_ready:
                z[t] = (x - mean) / scale[t]
                lim = bands.clip * scale[t]
                x = np.clip(x, mean - lim, mean + lim)
            a = max(bands.alpha, 1.0 / (t + 1))
            d = x - mean
            mean = mean + a * d
            var = (1 - a) * (var + a * d * d)
    return BandOutput(z, center, scale, ready)


class BandBank:
    """Bands for many symbols at once, one row per symbol, updated in vectorised steps.

    Call `stats` for the rows of the bars at hand (score), then `learn` with the same rows
    (learn). Rows in one call must be distinct.

    Examples
    --------
    >>> bank = BandBank(1, Bands(window=20, min_periods=10))
    >>> rows = bank.rows_for(["A", "B"])
    >>> for v in np.tile([1.0, 2.0], 20):
    ...     bank.learn(rows, np.array([[v], [v]]))
    >>> round(float(bank.stats(rows, np.array([[9.0], [1.5]])).z[0, 0]), 1)
    15.0
    """

    def __init__(self, n_features: int, bands: Bands, *, capacity: int = 16) -> None:
        self.bands = bands
        self.n_features = n_features
        self.index: dict[str, int] = {}
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        f, w = self.n_features, self.bands.window
        old = getattr(self, "count", None)
        fresh = {
            "count": np.zeros(capacity, dtype=np.int64),
            "sum": np.zeros((capacity, f)),
            "sumsq": np.zeros((capacity, f)),
            "mean": np.zeros((capacity, f)),
            "var": np.zeros((capacity, f)),
        }
        if self.bands.method == "rolling":
            fresh["ring"] = np.zeros((capacity, w, f))
        if old is not None:
            k = old.shape[0]
            for name, arr in fresh.items():
                arr[:k] = getattr(self, name)
        for name, arr in fresh.items():
            setattr(self, name, arr)

    def rows_for(self, symbols: list[str]) -> np.ndarray:
        """Row numbers of symbols, adding new ones."""
        out = np.empty(len(symbols), dtype=np.int64)
        for i, s in enumerate(symbols):
            row = self.index.get(s)
            if row is None:
                row = len(self.index)
                self.index[s] = row
                if row >= self.count.shape[0]:
                    self._alloc(2 * self.count.shape[0])
            out[i] = row
        return out

    def export_row(self, row: int) -> dict[str, np.ndarray]:
        """One row's state (`import_row` puts it back, in this bank or another)."""
        return {name: getattr(self, name)[row].copy() for name in self._names()}

    def import_row(self, row: int, state: Mapping[str, np.ndarray]) -> None:
        """Set one row's state from `export_row` of a bank with the same settings."""
        for name in self._names():
            getattr(self, name)[row] = state[name]

    def _names(self) -> tuple[str, ...]:
        return ("count", "sum", "sumsq", "mean", "var", "ring") if self.bands.method == "rolling" \
            else ("count", "sum", "sumsq", "mean", "var")

    def _center_scale(self, rows: np.ndarray) -> tuple[FloatArray, FloatArray, np.ndarray]:
        count = self.count[rows]
        ready = count >= self.bands.min_periods
        if self.bands.method == "rolling":
            n = np.minimum(count, self.bands.window).astype(np.float64)[:, None]
            safe = np.maximum(n, 1.0)
            center = self.sum[rows] / safe
            var = np.maximum(self.sumsq[rows] / safe - center * center, 0.0)
            center = np.where(n > 0, center, 0.0)
            scale = np.sqrt(np.where(n > 0, var, 0.0))
            return center, _floored(scale, self.bands.links), ready
        return self.mean[rows].copy(), _floored(np.sqrt(self.var[rows]), self.bands.links), ready

    def stats(self, rows: np.ndarray, raw: FloatArray) -> BandOutput:
        """Z-scores of ``raw`` (one row per entry of ``rows``) against each symbol's past."""
        center, scale, ready = self._center_scale(rows)
        z = np.where(ready[:, None], (raw - center) / scale, 0.0)
        return BandOutput(z, center, scale, ready)

    def learn(self, rows: np.ndarray, raw: FloatArray) -> None:
        """Add one value row per symbol row."""
        center, scale, ready = self._center_scale(rows)
        lim = self.bands.clip * scale
        x = np.where(ready[:, None], np.clip(raw, center - lim, center + lim), raw)
        count = self.count[rows]
        if self.bands.method == "rolling":
            w = self.bands.window
            pos = count % w
            full = (count >= w)[:, None]
            out = np.where(full, self.ring[rows, pos], 0.0)
            self.ring[rows, pos] = x
            s = self.sum[rows] + x - out
            q = self.sumsq[rows] + x * x - out * out
            # re-add the window exactly once per lap so rounding never accumulates
            lap = pos == w - 1
            if np.any(lap):
                s[lap] = self.ring[rows[lap]].sum(axis=1)
                q[lap] = (self.ring[rows[lap]] ** 2).sum(axis=1)
            self.sum[rows] = s
            self.sumsq[rows] = q
        else:
            a = np.maximum(self.bands.alpha, 1.0 / (count + 1.0))[:, None]
            mean = self.mean[rows]
            d = x - mean
            self.mean[rows] = mean + a * d
            self.var[rows] = (1 - a) * (self.var[rows] + a * d * d)
        self.count[rows] = count + 1
