"""Words for anomalies: which features stood out, by how much, and what kind of anomaly.

A detector ranks features by its own contributions (|z|, SHAP, reconstruction error); this
module turns the top ones into text such as ``"volume 14.0x its recent level; return
-6.1 sigma (-5.9%)"`` and names a kind (``volume_burst``, ``price_move``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from tickwise.anomaly.features import BAR_FEATURES

FloatArray = np.ndarray

_KINDS = {
    ("return", 1): "price_move",
    ("return", -1): "price_move",
    ("gap", 1): "gap",
    ("gap", -1): "gap",
    ("volume", 1): "volume_burst",
    ("volume", -1): "volume_drop",
    ("range", 1): "range_expansion",
    ("range", -1): "frozen_price",
    ("swing", 1): "range_expansion",
    ("swing", -1): "frozen_price",
}


@dataclass(frozen=True, slots=True)
class Explanation:
    """The top features of one anomaly, most responsible first.

    Examples
    --------
    >>> e = Explanation(("volume",), "volume 14.0x its 60-bar typical", "volume_burst")
    >>> e.top_feature
    'volume'
    """

    features: tuple[str, ...]
    text: str
    kind: str

    @property
    def top_feature(self) -> str:
        return self.features[0] if self.features else ""


def _phrase(name: str, raw: float, center: float, z: float, window_label: str) -> str:
    if name == "volume":
        ratio = float(np.exp(raw - center))
        return f"volume {ratio:.1f}x its recent level ({z:+.1f} sigma, {window_label} bands)"
    if name == "range":
        if raw <= np.log(1e-5) + 1e-9:
            return "no high-low range (price frozen)"
        ratio = float(np.exp(raw - center))
        return f"high-low range {ratio:.1f}x its {window_label} typical ({z:+.1f} sigma)"
    if name == "swing":
        return f"high-low swing {np.expm1(raw) * 100:.1f}% ({z:+.1f} sigma)"
    if name == "return":
        return f"return {z:+.1f} sigma ({np.expm1(raw) * 100:+.1f}%)"
    if name == "gap":
        return f"gap from previous close {z:+.1f} sigma ({np.expm1(raw) * 100:+.1f}%)"
    if name.endswith("_change"):
        return f"{name[:-7]} changed by {raw:+.4g} ({z:+.1f} sigma)"
    return f"{name} {raw:.4g} ({z:+.1f} sigma from its {window_label} mean {center:.4g})"


def describe(names: Sequence[str], contributions: FloatArray, raw: FloatArray, center: FloatArray,
             z: FloatArray, *, window_label: str = "60-bar", top: int = 2,
             min_share: float = 0.25) -> Explanation:
    """Explain one row: the top features by contribution (those with at least ``min_share``
    of the largest contribution, at most ``top``).

    Examples
    --------
    >>> e = describe(["return", "volume"], np.array([1.0, 9.0]), np.array([0.01, 16.0]),
    ...              np.array([0.0, 13.36]), np.array([1.0, 9.0]))
    >>> e.text
    'volume 14.0x its recent level (+9.0 sigma, 60-bar bands)'
    """
    contributions = np.nan_to_num(np.asarray(contributions, dtype=np.float64), nan=0.0)
    order = np.argsort(-contributions, kind="stable")
    best = contributions[order[0]] if order.size else 0.0
    chosen = [int(i) for i in order[:top] if best > 0 and contributions[i] >= min_share * best] or [int(order[0])]
    phrases = [_phrase(names[i], float(raw[i]), float(center[i]), float(z[i]), window_label) for i in chosen]
    first = names[chosen[0]]
    sign = 1 if z[chosen[0]] >= 0 else -1
    kind = _KINDS.get((first, sign), f"{first}_{'high' if sign > 0 else 'low'}")
    return Explanation(tuple(names[i] for i in chosen), "; ".join(phrases), kind)


def with_market(explanation: Explanation, context: FloatArray | None) -> Explanation:
    """Append what the other symbols did at the same bar time, for the explanation's bar
    features: the peers' median band z-score of each (the first part of a market-context row,
    `tickwise.anomaly.market`), so a reader tells a fault of one symbol from a market-wide
    move. Unchanged without a context (a bar scored alone).

    Examples
    --------
    >>> e = Explanation(("volume", "return"), "volume 14.0x its recent level", "volume_burst")
    >>> with_market(e, np.array([0.1, 0.4, 0.3, 0.0, 0.2, 0, 0, 0, 0, 0])).text
    'volume 14.0x its recent level; other symbols at this time (median): volume +0.3 sigma, return +0.1 sigma'
    >>> with_market(e, np.full(10, np.nan)) is e
    True
    """
    if context is None:
        return explanation
    peers = dict(zip(BAR_FEATURES, np.asarray(context, dtype=np.float64).tolist(), strict=False))
    parts = [f"{name} {peers[name]:+.1f} sigma" for name in explanation.features
             if name in peers and np.isfinite(peers[name])]
    if not parts:
        return explanation
    return replace(explanation, text=f"{explanation.text}; other symbols at this time (median): {', '.join(parts)}")
