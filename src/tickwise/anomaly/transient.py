"""The transient detector: band z-scores that trust moves which undo themselves next bar.

Injected and operational anomalies (a bad print, a flash crash and recovery, a one-bar volume
burst, a stale feed) are mostly *transient*, while real large bars (news, earnings, crashes)
are mostly *persistent*: the price does not come back next bar. So this model looks at a
window of two bars, the previous one and the current one (score before learn: nothing after
the current bar), and scores the current bar as the largest of

- ``sqrt(2) * min(|z_prev|, |z_cur|)`` on returns (or a value series' changes) when the two
  have opposite signs: a spike at the previous bar and its reversal now; ``sqrt(2)`` puts the
  two-bar evidence on the one-bar scale (two independent Gaussian tails, each at ``m`` sigma,
  are as rare as one at ``sqrt(2) m``);
- ``min(z_vol_prev, z_vol_prev - z_vol_cur)`` (both floored at 0): the previous bar's volume
  burst that is gone now;
- ``-z_range`` of the current bar: a bar without a high-low range (a frozen price);
- ``persistent`` (0.6) times the largest |z| of the current bar: persistent single-bar moves
  still count, but need 1/0.6 times the size (8.3 sigma at the band floor of 5).

A transient event is thus flagged one bar after it starts, which the evaluation's tolerance
of one bar after an event's end allows. The weights (``sqrt(2)`` from the argument above,
0.6 chosen on the bokeh tuning stocks only) are in the README's anomaly section.

The ``divergence`` detector is the same model with *confirmation* instead of a flat
discount: real large bars move price and volume together (news brings traders), while a bad
print, a stale or shifted feed, or a volume figure that is wrong moves one without the other.
So a price feature's persistent term (return, gap, range, swing) is divided by
``sqrt(1 + volume_confirm * max(z_vol, 0)^2)`` (a move on heavy volume is explained by the
volume), and the volume term, counted only upwards, by
``sqrt(1 + price_confirm * (z_ret^2 + max(z_range, 0)^2))`` (a burst with a price move behind
it is explained by the move); with no volume behind it a move counts in full
(``persistent=1``). The weights (``volume_confirm=1``, ``price_confirm=0.3``) were chosen on the
bokeh tuning stocks only; the README reports the held-out series.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tickwise.anomaly.features import BAR_FEATURES

FloatArray = np.ndarray
_SQRT2 = float(np.sqrt(2.0))


class TransientModel:
    """Score two-bar windows of z-scored features: reversals, faded bursts, frozen bars.

    Parameters
    ----------
    names
        Feature names of the windows (bar features by default); ``return`` and ``*_change``
        features are checked for reversals, ``volume`` for a faded burst, ``range`` for a
        frozen bar.
    persistent
        Weight of the current bar's largest |z| (persistent moves).
    volume_confirm
        How much heavy volume on the current bar discounts its price moves (0: not at all).
    price_confirm
        How much a price move on the current bar discounts its volume burst (0: not at all).
        With either set, only bursts (volume above its band) count, not quiet bars.

    Examples
    --------
    >>> m = TransientModel()
    >>> spike = np.zeros((1, 2, 5)); spike[0, 0, 0], spike[0, 1, 0] = 8.0, -7.0
    >>> news = np.zeros((1, 2, 5)); news[0, 0, 0], news[0, 1, 0] = 8.0, 0.5
    >>> [round(float(s), 2) for s in m.score_windows(np.vstack([spike, news]))]
    [9.9, 0.3]
    >>> m.reason(spike[0])
    "reverses the previous bar's return (+8.0 sigma)"
    """

    lookback = 2
    needs_fit = False

    def __init__(self, *, name: str = "transient", names: Sequence[str] = BAR_FEATURES,
                 persistent: float = 0.6, volume_confirm: float = 0.0, price_confirm: float = 0.0) -> None:
        if not 0 <= persistent <= 1:
            raise ValueError(f"persistent must be in [0, 1], was {persistent}")
        if volume_confirm < 0 or price_confirm < 0:
            raise ValueError(f"volume_confirm and price_confirm must be >= 0, was {volume_confirm}, {price_confirm}")
        self.name = name
        self.names = tuple(names)
        self.persistent = persistent
        self.volume_confirm = volume_confirm
        self.price_confirm = price_confirm
        self._moves = np.array([i for i, n in enumerate(self.names) if n == "return" or n.endswith("_change")],
                               dtype=np.int64)
        self._volume = self.names.index("volume") if "volume" in self.names else -1
        self._range = self.names.index("range") if "range" in self.names else -1
        self._return = self.names.index("return") if "return" in self.names else -1
        self._prices = np.array([i for i, n in enumerate(self.names) if n in ("return", "range", "gap", "swing")],
                                dtype=np.int64)
        self._confirms = (volume_confirm > 0 or price_confirm > 0) and self._volume >= 0

    def fit(self, windows: FloatArray) -> None:
        """Nothing to learn: the bands are the model."""

    def _terms(self, windows: FloatArray) -> FloatArray:
        prev, cur = windows[:, 0, :], windows[:, 1, :]
        out = self.persistent * np.abs(cur)
        if self._confirms:
            vol = np.maximum(cur[:, self._volume], 0.0)
            out[:, self._prices] /= np.sqrt(1.0 + self.volume_confirm * vol * vol)[:, None]
            move = cur[:, self._return] ** 2 if self._return >= 0 else 0.0
            if self._range >= 0:
                move = move + np.maximum(cur[:, self._range], 0.0) ** 2
            out[:, self._volume] = self.persistent * vol / np.sqrt(1.0 + self.price_confirm * move)
        if self._moves.size:
            p, c = prev[:, self._moves], cur[:, self._moves]
            rev = np.where(p * c < 0, _SQRT2 * np.minimum(np.abs(p), np.abs(c)), 0.0)
            out[:, self._moves] = np.maximum(out[:, self._moves], rev)
        if self._volume >= 0:
            pv, cv = prev[:, self._volume], cur[:, self._volume]
            faded = np.minimum(np.maximum(pv, 0.0), np.maximum(pv - cv, 0.0))
            out[:, self._volume] = np.maximum(out[:, self._volume], faded)
        if self._range >= 0:
            out[:, self._range] = np.maximum(out[:, self._range], -cur[:, self._range])
        return out

    def score_windows(self, windows: FloatArray) -> FloatArray:
        return self._terms(windows).max(axis=1)

    def attribute(self, windows: FloatArray) -> FloatArray:
        return self._terms(windows)

    def reason(self, window: FloatArray) -> str:
        """Words for a transient pattern in one window ``(2, F)``, or "" when the current
        bar alone explains the score."""
        terms = self._terms(window[None])[0]
        i = int(np.argmax(terms))
        prev, cur = window[0], window[1]
        if terms[i] <= self.persistent * abs(cur[i]) + 1e-12:
            return self._unconfirmed(i, cur)
        if i == self._volume:
            return f"the previous bar's volume burst ({prev[i]:+.1f} sigma) is gone"
        if i in self._moves:
            return f"reverses the previous bar's {self.names[i]} ({prev[i]:+.1f} sigma)"
        return ""

    def _unconfirmed(self, i: int, cur: FloatArray) -> str:
        if not self._confirms or abs(cur[i]) < 1.0:
            return ""
        if i == self._volume:
            if self._return < 0 or abs(cur[self._return]) >= 1.0:
                return ""
            return f"no price move behind it (return {cur[self._return]:+.1f} sigma)"
        if i in self._prices and cur[self._volume] < 1.0:
            return f"on ordinary volume ({cur[self._volume]:+.1f} sigma)"
        return ""

    def clone(self) -> TransientModel:
        return TransientModel(name=self.name, names=self.names, persistent=self.persistent,
                              volume_confirm=self.volume_confirm, price_confirm=self.price_confirm)
