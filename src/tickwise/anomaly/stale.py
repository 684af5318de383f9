"""The stale detector: a price that stops moving for longer than this series ever does.

A frozen feed (a vendor repeating its last price, a stuck quote, a halted line that still
prints) shows up bar by bar only as quiet bars, and one quiet bar is common: on 1s bars of a
stock that trades a few ticks a second, or on a currency pair quoted in coarse ticks, many
bars have no range. What is rare is the *run*: the band detectors score one bar at a time and
miss it (`tickwise up --faults` measured the live classifier at 7-8 of 16-20 frozen feeds).

So this model reads each series' last ``lookback`` bars as they are (the raw features, not
their band z-scores) and asks how often this series' flat bars start and go on. A bar is
*flat* when it printed one price, the previous close (bars: high == low == close == previous
close; value series: no column changed). Before the current run of flat bars, the window's
own transitions give ``p_start`` (a flat bar after a moving one) and ``p_cont`` (a flat bar
after a flat one), each with a uniform prior, and a run of ``r`` flat bars scores

    score = -log10(p_start) - log10(E[p_cont ** (r - 1)])

the surprise, in decimal digits, of a run this long starting at a given bar under that
two-state chain, with the continuation's uncertainty kept (the moment of its Beta posterior,
not the plug-in ``p_cont ** (r - 1)``: a window that has seen few flat runs does not
overstate how rare a long one is). A series that trades every tick needs a few flat bars,
one whose quiet bars come in clusters needs many, and one that is mostly flat never flags.
The threshold follows from the target false-alarm rate ``q`` with no fitting: flag when the
run is rarer than once in ``1/q`` bars, ``score > log10(1/q)`` (3 at the default 1e-3;
`tickwise.anomaly.threshold_settings`). Every bar of a run past that point is flagged, each
with the run so far ("unchanged for 7 bars; …"), so a series whose flat bars come in
clusters sees a few times ``q`` of its bars flagged (the tests measure it).

The runs in the window are anomalies themselves when long enough: taken shortest first, a
run that scores above ``level`` against the moving bars and the shorter runs is left out of
the rates, with every longer one (as the thresholds do not learn what they flag), so a
frozen feed earlier in the window does not teach the series that freezes are normal. With a
full window and no flat bar in it, a run needs 5 bars to flag (``p_start`` about 1/240,
``E[p_cont ** 4]`` 1/5). A series' first bars make a short window, where a run must be
longer (33 bars after 30 moving ones, 17 after 60, 10 after 100), and a run not flagged there
is history for the rest of the window. A run longer than the window keeps flagging. Scored
before learned: the window holds the bars before the current one and the current one, nothing
after.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tickwise.anomaly.features import BAR_FEATURES
from tickwise.anomaly.kernels import stale_kernel

FloatArray = np.ndarray

#: Bars of history the flat-bar rates are read from (the window, the current bar last).
LOOKBACK = 240


class StaleModel:
    """Score windows of raw feature rows by the length of the flat run they end with.

    Parameters
    ----------
    names
        Feature names of the windows: bars (``return`` and ``swing`` zero: one price, the
        previous close) or a value series (every ``*_change`` zero).
    lookback
        Bars per window (the current one last); at least 20.
    level
        A run in the history that scores above this (the threshold at the default
        false-alarm rate, 1e-3) is an anomaly, not history: it is left out of the rates
        (module docstring).

    Examples
    --------
    >>> m = StaleModel(lookback=40)
    >>> moving = np.tile([0.001, -7.0, 0.0, 0.0, 0.002], (40, 1))
    >>> frozen = moving.copy(); frozen[-5:, [0, 4]] = 0.0
    >>> [round(float(s), 2) for s in m.score_windows(np.stack([moving, frozen]))]
    [0.0, 2.26]
    >>> m.reason(frozen)
    'unchanged for 5 bars (here a flat bar starts 1 in 36 bars and goes on 1 in 2.0)'
    """

    needs_fit = False
    #: the detector feeds this model raw feature rows, not band z-scores (`tickwise.anomaly.detector`)
    reads_raw = True

    def __init__(self, *, names: Sequence[str] = BAR_FEATURES, lookback: int = LOOKBACK, level: float = 3.0) -> None:
        if lookback < 20:
            raise ValueError(f"lookback must be >= 20, was {lookback}")
        if not level > 0:
            raise ValueError(f"level must be > 0, was {level}")
        self.level = float(level)
        self.name = "stale"
        self.names = tuple(names)
        self.lookback = lookback
        bars = "return" in self.names and "swing" in self.names
        moves = ("return", "swing") if bars else tuple(n for n in self.names if n.endswith("_change"))
        if not moves:
            raise ValueError(f"stale needs bar features or *_change columns, was {list(self.names)}")
        self._moves = np.array([self.names.index(n) for n in moves], dtype=np.int64)
        #: where explanations put the score: the range of a bar (a frozen price), else the first change
        self._at = self.names.index("range") if bars and "range" in self.names else int(self._moves[0])
        self.kind = "frozen_price" if bars else "frozen_value"

    @property
    def identity(self) -> str:
        """What the saved state of a stage depends on beyond the lookback (`MultiSymbolDetector.config`)."""
        return f"stale:{','.join(self.names)}:{self.level:g}"

    def fit(self, windows: FloatArray) -> None:
        """Nothing to learn: each window carries its own history."""

    def _stats(self, windows: FloatArray) -> FloatArray:
        """Per window: the flat run it ends with, its score, and the counts of the bars before the
        run (`tickwise.anomaly.kernels.stale_kernel`), as columns of an (m, 6) array."""
        w = np.ascontiguousarray(windows, dtype=np.float64)
        out = np.empty((w.shape[0], 6))
        stale_kernel(w, self._moves, self.level, out)
        return out

    def score_windows(self, windows: FloatArray) -> FloatArray:
        return self._stats(windows)[:, 1]

    def attribute(self, windows: FloatArray) -> FloatArray:
        out = np.zeros((np.asarray(windows).shape[0], len(self.names)))
        out[:, self._at] = self.score_windows(windows)
        return out

    def reason(self, window: FloatArray) -> str:
        """Words for the run one window ``(lookback, F)`` ends with ("" when it ends with a move)."""
        run, _, k_start, n_moving, k_cont, n_flat = self._stats(np.asarray(window)[None])[0].tolist()
        if run < 1:
            return ""
        p_start = (k_start + 1) / (n_moving + k_start + 2)
        p_cont = (k_cont + 1) / (n_flat + 2)
        return (f"unchanged for {run:.0f} bar{'s' if run != 1 else ''} (here a flat bar starts 1 in "
                f"{1 / p_start:.0f} bars and goes on 1 in {1 / p_cont:.1f})")

    def clone(self) -> StaleModel:
        return StaleModel(names=self.names, lookback=self.lookback, level=self.level)
