"""Adaptive thresholds with a target false-alarm rate: rolling quantiles + a GPD tail.

A threshold must sit where a *normal* score exceeds it with probability ``q`` (say 1e-3),
far out in the tail where few scores are seen, and it must not be dragged up by the
anomalies themselves (real streams and the evaluation carry anomalies at rates far above
``q``). Fitting the extreme tail directly fails both ways: learning the anomalies raises
the threshold until they pass unflagged; dropping them (SPOT) truncates the tail and the
threshold sinks. So the tail is read where anomalies are a minor part of it: seven
rolling quantiles of the last ``window`` scores at tail probabilities from ``a`` down to
``a/4`` (default 20 % .. 5 %) are fitted by least squares with a generalised Pareto tail
above the first (shape ``xi`` on a grid in [-0.5, ``xi_max``], scale ``sigma`` in closed form), and
the threshold is that tail's quantile extrapolated to ``q``:

    x_q = x_a + sigma * ((a / q) ** xi - 1) / xi

Scores above the threshold in force (the anomalies) are not learned; that truncates the
distribution only above the threshold, far from the quantiles the fit reads, so it cannot
drag the threshold down the way it does when the extreme tail itself is fitted. The
threshold is refreshed every ``refresh`` learned scores; until ``min_scores`` scores were seen
it is the ``ceiling`` (+inf unless set: nothing is flagged before the tail is known). An
optional ``floor`` is a level the threshold never goes below: for the band detectors, whose
score is a z-score with a meaning of its own, it is a minimum number of sigmas (5, chosen on
the bokeh stocks only, see the README) so a quiet stretch whose tail fit is short does not
flag ordinary 3-4 sigma bars. ``xi_max`` caps the tail shape: a
fit of 80-95 % quantiles that comes out slightly convex otherwise extrapolates with xi = 1 to
a threshold of 25 sigma and silences a series (the band detectors use 0.3, about the tail of
daily returns; the Isolation Forest 0.1; see `tickwise.anomaly.THRESHOLD_OPTIONS`). An
optional ``ceiling`` is a level it never goes above: for the classifier, whose score is a
log-odds, a window it is that sure of is flagged however many such windows the series has
had, and from a series' first scored bar on: a new symbol does not wait ``min_scores`` bars for
its first alert (on the held-out series the classifier flagged 1.2-2.3 real bars per 1000 at
its ceiling in a new series' first 220 bars, against 0.9-2.1 at the adaptive threshold later).
NaN scores (a detector still warming up) are skipped. A floor equal to the ceiling pins the
threshold (``stale``, whose score is a probability in decimal digits: nothing is fitted or learned).
`tail_thresholds` (one series) and `ThresholdBank` (many symbols) give the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

FloatArray = np.ndarray


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdSettings:
    """Settings of the adaptive threshold.

    Examples
    --------
    >>> ThresholdSettings(q=1e-3).levels[::3]
    (0.8, 0.9, 0.95)
    >>> ThresholdSettings(floor=5.0).floor
    5.0
    """

    q: float = 1e-3
    window: int = 2000
    min_scores: int = 200
    refresh: int = 20
    a: float = 0.2
    floor: float = float("-inf")
    ceiling: float = float("inf")
    xi_max: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.q < self.a / 4:
            raise ValueError(f"q must be in (0, a/4={self.a / 4}), was {self.q}")
        if not 0 < self.a < 0.5:
            raise ValueError(f"a must be in (0, 0.5), was {self.a}")
        if not 20 <= self.min_scores <= self.window:
            raise ValueError(f"min_scores must be in [20, window], was {self.min_scores}")
        if self.refresh < 1:
            raise ValueError(f"refresh must be >= 1, was {self.refresh}")
        if not self.floor <= self.ceiling:
            raise ValueError(f"ceiling must be >= floor ({self.floor}), was {self.ceiling}")
        if not 0 <= self.xi_max <= 1:
            raise ValueError(f"xi_max must be in [0, 1], was {self.xi_max}")

    @property
    def pinned(self) -> bool:
        """Whether the floor is the ceiling: the threshold is that level, nothing is fitted or learned."""
        return self.floor == self.ceiling

    @property
    def levels(self) -> tuple[float, ...]:
        return tuple(round(1 - self.a * 2 ** (-j / 3), 12) for j in range(7))


_XI_GRID = np.linspace(-0.5, 1.0, 61)


def _growth(r: FloatArray, xi: FloatArray) -> FloatArray:
    # GPD quantile growth ((r ** xi) - 1) / xi, with its limit log(r) at xi = 0
    small = np.abs(xi) < 1e-9
    safe = np.where(small, 1.0, xi)
    return np.where(small, np.log(r), (r ** safe - 1) / safe)


def tail_threshold(scores: FloatArray, settings: ThresholdSettings) -> FloatArray:
    """Thresholds for each row of ``scores`` (m, n): the last axis is one window.

    Examples
    --------
    >>> s = np.random.default_rng(0).exponential(1.0, (1, 20000))
    >>> 6.5 < float(tail_threshold(s, ThresholdSettings(q=1e-3))[0]) < 7.3  # exact: ln(1000)
    True
    """
    levels = np.asarray(settings.levels)
    xs = np.quantile(scores, levels, axis=-1).T  # (m, J)
    base = xs[:, :1]
    y = xs[:, 1:] - base  # (m, J-1)
    r = (settings.a / (1 - levels[1:]))  # (J-1,)
    grid = _XI_GRID[settings.xi_max + 1e-12 >= _XI_GRID]
    g = _growth(r[None, :], grid[:, None])  # (G, J-1)
    sigma = np.maximum(y @ g.T, 0.0) / (g * g).sum(axis=1)  # (m, G)
    resid = ((y[:, None, :] - sigma[:, :, None] * g[None]) ** 2).sum(axis=2)
    best = np.argmin(resid, axis=1)
    xi = grid[best]
    sig = sigma[np.arange(xs.shape[0]), best]
    return base[:, 0] + sig * _growth(np.asarray(settings.a / settings.q), xi)


def tail_thresholds(scores: FloatArray, settings: ThresholdSettings, *, phase: int = 0) -> FloatArray:
    """Threshold in force before each score of one series (score > threshold: anomaly).

    ``phase`` shifts the refresh schedule (`ThresholdBank` uses the symbol's row, so the
    symbols of one step do not all refresh at once).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.exponential(1.0, 5000)
    >>> th = tail_thresholds(s, ThresholdSettings(q=1e-3))
    >>> bool(np.isinf(th[0]) and 5.0 < th[-1] < 10.0 and np.mean(s[200:] > th[200:]) < 0.003)
    True
    >>> float(tail_thresholds(s, ThresholdSettings(q=1e-3, ceiling=6.0))[0])  # before the tail is known
    6.0
    """
    scores = np.asarray(scores, dtype=np.float64)
    out = np.full(scores.shape[0], settings.ceiling)
    if settings.pinned:
        return out
    seen = np.empty(scores.shape[0])
    count = 0
    th = settings.ceiling
    for i, x in enumerate(scores.tolist()):
        out[i] = th
        if x != x or x > th:  # NaN (warming up) or an anomaly: not learned
            continue
        seen[count] = x
        count += 1
        if count >= settings.min_scores and (count == settings.min_scores or (count + phase) % settings.refresh == 0):
            th = min(max(float(tail_threshold(seen[max(0, count - settings.window):count][None], settings)[0]),
                         settings.floor), settings.ceiling)
    return out


_ROW_STATE = ("ring", "count", "z", "phase")


class ThresholdBank:
    """`tail_thresholds` for many symbols, one row per symbol (rows given by the caller).

    Examples
    --------
    >>> bank = ThresholdBank(ThresholdSettings(min_scores=20, refresh=5, q=0.005))
    >>> rows = np.array([0, 1])
    >>> for v in np.linspace(0, 1, 20):
    ...     _ = bank.update(rows, np.array([v, v]))
    >>> bool(np.isfinite(bank.threshold(rows)).all())
    True
    """

    def __init__(self, settings: ThresholdSettings, *, capacity: int = 16) -> None:
        self.settings = settings
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        old = getattr(self, "z", None)
        fresh = {
            "ring": np.zeros((capacity, self.settings.window)),
            "count": np.zeros(capacity, dtype=np.int64),
            "z": np.full(capacity, self.settings.ceiling),  # until a row has seen min_scores
            # when a row refreshes its threshold: every `refresh` scores, offset by its row so
            # that symbols take turns; kept with the row's state (`export_row`)
            "phase": np.arange(capacity, dtype=np.int64),
        }
        if old is not None:
            for name, arr in fresh.items():
                arr[: old.shape[0]] = getattr(self, name)
        for name, arr in fresh.items():
            setattr(self, name, arr)

    def _ensure(self, rows: np.ndarray) -> None:
        if rows.size and rows.max() >= self.z.shape[0]:
            self._alloc(max(2 * self.z.shape[0], int(rows.max()) + 1))

    def export_row(self, row: int) -> dict[str, np.ndarray]:
        """One row's state (`import_row` puts it back, in this bank or another)."""
        self._ensure(np.array([row]))
        return {name: getattr(self, name)[row].copy() for name in _ROW_STATE}

    def import_row(self, row: int, state: Mapping[str, np.ndarray]) -> None:
        """Set one row's state from `export_row` of a bank with the same settings."""
        self._ensure(np.array([row]))
        for name in _ROW_STATE:
            getattr(self, name)[row] = state[name]

    def threshold(self, rows: np.ndarray) -> FloatArray:
        """Thresholds in force for these rows."""
        self._ensure(rows)
        return self.z[rows].copy()

    def update(self, rows: np.ndarray, scores: FloatArray) -> FloatArray:
        """Learn one score per row (distinct rows); return the thresholds in force before it."""
        self._ensure(rows)
        st = self.settings
        before = self.z[rows].copy()
        if st.pinned:  # nothing to learn
            return before
        valid = ~np.isnan(scores) & (scores <= before)
        r = rows[valid]
        if r.size == 0:
            return before
        count = self.count[r]
        self.ring[r, count % st.window] = scores[valid]
        count = count + 1
        self.count[r] = count
        due = (count >= st.min_scores) & ((count == st.min_scores) | ((count + self.phase[r]) % st.refresh == 0))
        if np.any(due):
            for n in np.unique(np.minimum(count[due], st.window)).tolist():
                sel = r[due][np.minimum(count[due], st.window) == n]
                # the ring holds scores in write order; quantiles ignore order
                self.z[sel] = np.clip(tail_threshold(self.ring[sel, :n], st), st.floor, st.ceiling)
        return before
