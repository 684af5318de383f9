"""Bars to a model-ready feature table (compute only, no I/O).

Steps, per (symbol, timeframe) series in time order:

1. **Gaps.** A missing bar is an expected bar that is not there: for daily (or longer)
   bars a weekday (Monday–Friday) between two bars; for intraday bars a missing interval
   within the same UTC day (the step from one day's last bar to the next day's first is a
   session break, not a gap). ``gap_bars`` counts the bars missing right before a row and
   ``gap`` flags it. With ``gaps="fill"`` the missing bars are inserted, forward-filled from
   the previous close (open = high = low = close, volume 0) and marked ``filled``; nothing
   is ever interpolated.
2. **Returns.** ``return_1`` (simple) and ``log_return_1`` against the previous bar.
3. **Indicators.** TA-Lib-compatible batch indicators from `tickwise.indicators`.
4. **Normalised features.** ``<column>_z<W>``: the z-score of a value against the mean and
   (sample) deviation of the ``W`` bars ending at that bar, so a row uses no later data.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from tickwise.exceptions import InputError
from tickwise.indicators import compute_indicators
from tickwise.timeframes import timeframe_ns

#: Indicator features computed by default.
DEFAULT_INDICATORS = "sma_9,sma_21,ema_12,rsi_14,macd,bbands_20,atr_14,obv,volume_sma_20"
#: Columns turned into trailing z-scores by default.
DEFAULT_ZSCORE = ("return_1", "log_return_1", "volume", "rsi_14", "macd_hist", "atr_14")
#: Never insert more than this many bars into one gap (a longer one is only flagged).
MAX_FILL = 10_000

_KEYS = ["symbol", "timeframe"]
_DAY_NS = 86_400 * 10**9


def _check_bars(bars: pl.DataFrame) -> None:
    needed = ["symbol", "timeframe", "ts", "open", "high", "low", "close", "volume"]
    missing = [c for c in needed if c not in bars.columns]
    if missing:
        raise InputError(f"bars must have columns {needed}, was missing {missing}")
    if bars.height == 0:
        raise InputError("bars must have at least one row, was empty")


def _ts_ns(col: str = "ts") -> pl.Expr:
    return pl.col(col).dt.epoch("ns")


def detect_gaps(bars: pl.DataFrame) -> pl.DataFrame:
    """Add ``gap_bars`` (bars missing right before each row) and ``gap`` (``gap_bars > 0``).

    Returns the bars sorted by symbol, timeframe and ts; duplicate timestamps are an error.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> days = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 5, 8)]  # Mon Tue Fri Mon
    >>> bars = pl.DataFrame({"symbol": "A", "timeframe": "1d", "ts": days, "open": 1.0,
    ...     "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})
    >>> detect_gaps(bars)["gap_bars"].to_list()
    [0, 0, 2, 0]
    """
    _check_bars(bars)
    frame = bars.sort([*_KEYS, "ts"], maintain_order=True)
    dup = frame.select(pl.struct([*_KEYS, "ts"]).is_duplicated().any()).item()
    if dup:
        raise InputError("bars must have one row per (symbol, timeframe, ts), was duplicated")
    steps = {tf: timeframe_ns(tf) for tf in frame["timeframe"].unique().to_list()}
    step = pl.col("timeframe").replace_strict(steps, return_dtype=pl.Int64)
    prev_ts = pl.col("ts").shift(1).over(_KEYS)
    date, prev_date = pl.col("ts").dt.date(), prev_ts.dt.date()
    daily_missing = pl.business_day_count(prev_date, date) - 1
    delta = _ts_ns() - prev_ts.dt.epoch("ns")
    intraday_missing = pl.when(date == prev_date).then(delta // step - 1).otherwise(0)
    missing = pl.when(step >= _DAY_NS).then(daily_missing).otherwise(intraday_missing)
    return frame.with_columns(
        missing.clip(lower_bound=0).fill_null(0).cast(pl.Int64).alias("gap_bars")
    ).with_columns((pl.col("gap_bars") > 0).alias("gap"))


def fill_gaps(bars: pl.DataFrame) -> pl.DataFrame:
    """Insert the missing bars found by `detect_gaps`, forward-filled and marked ``filled``.

    Inserted bars carry the previous close as open, high, low and close, volume 0 and
    ``gap`` True; a gap longer than `MAX_FILL` bars is flagged but not filled.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> days = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 4)]  # Mon, Thu
    >>> bars = pl.DataFrame({"symbol": "A", "timeframe": "1d", "ts": days, "open": 1.0,
    ...     "high": 2.0, "low": 1.0, "close": 2.0, "volume": 5.0})
    >>> fill_gaps(detect_gaps(bars)).select("ts", "close", "volume", "filled").height
    4
    """
    if "gap_bars" not in bars.columns:
        bars = detect_gaps(bars)
    bars = bars.with_columns(pl.lit(False).alias("filled"))
    todo = bars.filter((pl.col("gap_bars") > 0) & (pl.col("gap_bars") <= MAX_FILL))
    if todo.height == 0:
        return bars
    prev = bars.with_columns(
        pl.col("ts").shift(1).over(_KEYS).alias("prev_ts"),
        pl.col("close").shift(1).over(_KEYS).alias("prev_close"),
    ).filter((pl.col("gap_bars") > 0) & (pl.col("gap_bars") <= MAX_FILL))
    rows = []
    for r in prev.select("symbol", "timeframe", "prev_ts", "ts", "prev_close").iter_rows():
        symbol, timeframe, prev_ts, ts, close = r
        step = timeframe_ns(timeframe)
        if step >= _DAY_NS:
            # business days strictly between the two bars, at the previous bar's time of day
            days = pl.date_range(prev_ts.date(), ts.date(), "1d", eager=True, closed="none")
            days = days.filter(days.dt.weekday() <= 5)
            stamps = [prev_ts + (d - prev_ts.date()) for d in days.to_list()]
        else:
            n = int((ts - prev_ts).total_seconds() * 1e9 // step) - 1
            stamps = [prev_ts + (i + 1) * (ts - prev_ts) / (n + 1) for i in range(n)]
        rows.extend((symbol, timeframe, s, close) for s in stamps)
    filled = pl.DataFrame(rows, schema={"symbol": pl.Utf8, "timeframe": pl.Utf8,
                                        "ts": bars.schema["ts"], "close": pl.Float64}, orient="row")
    filled = filled.with_columns(
        pl.col("close").alias("open"), pl.col("close").alias("high"), pl.col("close").alias("low"),
        pl.lit(0.0).alias("volume"), pl.lit(0).cast(pl.Int64).alias("gap_bars"),
        pl.lit(True).alias("gap"), pl.lit(True).alias("filled"),
    )
    return pl.concat([bars, filled], how="diagonal_relaxed").sort([*_KEYS, "ts"], maintain_order=True)


def add_returns(bars: pl.DataFrame) -> pl.DataFrame:
    """Add ``return_1`` and ``log_return_1`` against the previous bar of the same series.

    Examples
    --------
    >>> df = pl.DataFrame({"symbol": "A", "timeframe": "1d", "ts": [1, 2], "close": [10.0, 11.0]})
    >>> add_returns(df)["return_1"].round(6).to_list()
    [None, 0.1]
    """
    prev = pl.col("close").shift(1).over(_KEYS)
    return bars.with_columns(
        (pl.col("close") / prev - 1.0).alias("return_1"),
        (pl.col("close") / prev).log().alias("log_return_1"),
    )


def trailing_zscore(frame: pl.DataFrame, columns: Sequence[str], *, window: int) -> pl.DataFrame:
    """Add ``<column>_z<window>``: z-score against the ``window`` bars ending at each row.

    Null until a full window is available and where the window's deviation is 0.

    Examples
    --------
    >>> df = pl.DataFrame({"symbol": "A", "timeframe": "1d", "x": [1.0, 2.0, 3.0, 10.0]})
    >>> trailing_zscore(df, ["x"], window=3)["x_z3"].round(4).to_list()
    [None, None, 1.0, 1.1471]
    """
    if window < 2:
        raise InputError(f"zscore window must be >= 2, was {window}")
    exprs = []
    for c in columns:
        if c not in frame.columns:
            raise InputError(f"cannot normalise column {c!r}: not in {frame.columns}")
        x = pl.col(c).cast(pl.Float64)
        mean = x.rolling_mean(window, min_samples=window).over(_KEYS)
        std = x.rolling_std(window, min_samples=window).over(_KEYS)
        exprs.append(pl.when(std > 0).then((x - mean) / std).alias(f"{c}_z{window}"))
    return frame.with_columns(exprs)


def build_features(bars: pl.DataFrame, *, gaps: str = "flag", zscore_window: int = 100,
                   indicators: str = DEFAULT_INDICATORS,
                   zscore_columns: Sequence[str] = DEFAULT_ZSCORE) -> pl.DataFrame:
    """Bars in, feature table out: gaps, returns, indicators, trailing z-scores.

    Parameters
    ----------
    bars
        Columns of `tickwise.domain.BAR_SCHEMA` (``trades``/``vwap`` optional), any symbols.
    gaps
        ``"flag"`` marks bars after missing ones; ``"fill"`` also inserts forward-filled bars.
    zscore_window
        Bars in the trailing window of the normalised features.

    Examples
    --------
    >>> import numpy as np
    >>> from datetime import datetime, timedelta, UTC
    >>> n = 300
    >>> close = 100 + np.cumsum(np.random.default_rng(0).normal(size=n))
    >>> bars = pl.DataFrame({"symbol": "A", "timeframe": "1m",
    ...     "ts": [datetime(2024, 1, 2, tzinfo=UTC) + timedelta(minutes=i) for i in range(n)],
    ...     "open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 100.0})
    >>> f = build_features(bars, zscore_window=50)
    >>> f.height, f["gap"].sum(), "log_return_1_z50" in f.columns
    (300, 0, True)
    """
    if gaps not in ("flag", "fill"):
        raise InputError(f"gaps must be 'flag' or 'fill', was {gaps!r}")
    frame = detect_gaps(bars)
    frame = fill_gaps(frame) if gaps == "fill" else frame.with_columns(pl.lit(False).alias("filled"))
    frame = add_returns(frame)
    frame = compute_indicators(frame, indicators)
    frame = trailing_zscore(frame, [c for c in zscore_columns if c in frame.columns], window=zscore_window)
    first = ["symbol", "timeframe", "ts", "open", "high", "low", "close", "volume",
             "gap", "gap_bars", "filled"]
    return frame.select([*first, *[c for c in frame.columns if c not in first]])
