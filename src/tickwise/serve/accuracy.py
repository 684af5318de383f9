"""Live model accuracy: forecasts against the bars that then closed, and against the random walk.

Pure computation on Polars frames; the API feeds it rows read from the warehouse.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl


def score_forecasts(bars: pl.DataFrame, forecasts: pl.DataFrame) -> list[dict[str, Any]]:
    """Compare one-step close forecasts with the actual closes, per model.

    ``bars`` needs ``ts`` and ``close``; ``forecasts`` needs ``ts`` (the bar forecast),
    ``close`` and optionally ``model``, ``lo_80``/``hi_80``, ``lo_95``/``hi_95``. The random
    walk predicts each bar's close with the close before it, on the same bars the model was
    scored on, so the two errors are comparable.

    Examples
    --------
    >>> import datetime as dt
    >>> ts = [dt.datetime(2024, 1, 1, 0, m) for m in range(4)]
    >>> bars = pl.DataFrame({"ts": ts, "close": [10.0, 11.0, 12.0, 13.0]})
    >>> fc = pl.DataFrame({"ts": ts[1:], "close": [11.5, 12.0, 13.5], "model": ["m"] * 3,
    ...                    "lo_80": [11.2, 11.0, 13.0], "hi_80": [12.0, 13.0, 14.0]})
    >>> r = score_forecasts(bars, fc)[0]
    >>> (r["n"], r["mae"], r["mae_random_walk"], r["coverage_80"])
    (3, 0.3333333333333333, 1.0, 0.6666666666666666)
    """
    if bars.is_empty() or forecasts.is_empty() or "close" not in forecasts.columns:
        return []
    actual = (
        bars.select("ts", "close")
        .sort("ts")
        .with_columns(pl.col("close").shift(1).alias("prev_close"))
        .rename({"close": "actual"})
    )
    fc = forecasts if "model" in forecasts.columns else forecasts.with_columns(pl.lit("model").alias("model"))
    keep = [c for c in ("ts", "model", "close", "lo_80", "hi_80", "lo_95", "hi_95") if c in fc.columns]
    fc = fc.select(keep).unique(subset=["ts", "model"], keep="last")
    joined = fc.join(actual, on="ts", how="inner").drop_nulls(["actual", "prev_close", "close"])
    out = []
    for (model,), group in sorted(joined.group_by(["model"]), key=lambda kv: str(kv[0][0])):
        n = group.height
        mae = float((group["close"] - group["actual"]).abs().mean())  # type: ignore[arg-type]
        mae_rw = float((group["prev_close"] - group["actual"]).abs().mean())  # type: ignore[arg-type]
        out.append({
            "model": str(model),
            "n": n,
            "mae": mae,
            "mae_random_walk": mae_rw,
            "error_ratio": mae / mae_rw if mae_rw > 0 else None,
            "coverage_80": _coverage(group, "lo_80", "hi_80"),
            "coverage_95": _coverage(group, "lo_95", "hi_95"),
        })
    return out


def _coverage(group: pl.DataFrame, lo: str, hi: str) -> float | None:
    if lo not in group.columns or hi not in group.columns:
        return None
    g = group.drop_nulls([lo, hi])
    if g.is_empty():
        return None
    inside = ((g["actual"] >= g[lo]) & (g["actual"] <= g[hi])).mean()
    return None if inside is None or math.isnan(float(inside)) else float(inside)  # type: ignore[arg-type]
