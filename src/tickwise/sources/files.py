"""Read historical bars and ticks from CSV and Parquet files.

Recognised without options:

- a generic OHLCV CSV: header names in any case, a date or datetime column (``date``,
  ``datetime``, ``time``, ``timestamp``, ``ts``, or an unnamed first index column), an
  optional ``symbol``/``ticker`` column, optional ``trades``/``vwap``;
- the Kaggle "Huge Stock Market Dataset" ``.txt`` files
  (``Date,Open,High,Low,Close,Volume,OpenInt``; symbol from the file name, ``aapl.us.txt``
  → ``AAPL``);
- yfinance CSV exports, both the flat ``Date,Open,High,Low,Close,Adj Close,Volume`` form and
  the three-line header (``Price,…`` / ``Ticker,…`` / ``Date,…``);
- Parquet files with the same column names;
- tick files: columns ``price`` and ``size`` (or ``qty``/``quantity``/``volume``) with a
  timestamp column and a symbol column.

Dates with an offset are converted to UTC. Date-times without one are read in the file's
time zone, ``tz`` (default UTC; the setting ``TICKWISE_INPUT_TZ`` for the commands): a vendor's
``2024-07-01 09:30`` in New York time is 13:30 UTC. Plain dates (daily bars) are UTC midnight
whatever ``tz`` says.
Rows that break bar invariants are not dropped: `load_bars` returns them separately with
a reason, for the dead-letter table.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tickwise.exceptions import InputError
from tickwise.timeframes import timeframe_ns

_TIME_NAMES = ("datetime", "timestamp", "date", "time", "ts", "ts_event", "")
_SYMBOL_NAMES = ("symbol", "ticker", "name", "instrument")
_SIZE_NAMES = ("size", "qty", "quantity", "amount")
_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M",
    "%Y%m%d",
)
_CANON = {
    "open": "open", "o": "open",
    "high": "high", "h": "high",
    "low": "low", "l": "low",
    "close": "close", "c": "close", "last": "close",
    "volume": "volume", "vol": "volume", "v": "volume",
    "trades": "trades", "count": "trades", "vwap": "vwap",
    "price": "price",
    "id": "id", "trade_id": "id",
}


@dataclass(frozen=True, slots=True)
class BarFile:
    """Bars read from a file, and the rows that could not be bars (with a reason)."""

    bars: pl.DataFrame
    rejected: pl.DataFrame  # columns: reason, payload (the row as JSON)
    kind: str  # "bars" or "ticks"


def symbol_from_path(path: Path) -> str:
    """Guess a symbol from a file name (``aapl.us.txt`` → ``AAPL``).

    Examples
    --------
    >>> symbol_from_path(Path("data/msft.us.txt"))
    'MSFT'
    """
    stem = path.name.split(".")[0]
    for suffix in ("_daily", "_hourly", "-daily", "-hourly"):
        stem = stem.split(suffix)[0]
    return stem.upper() or "UNKNOWN"


def _read_raw(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise InputError(f"file must exist, was {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            return pl.read_parquet(path)
        except Exception as exc:
            raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    text = path.read_bytes()
    if not text.strip():
        raise InputError(f"{path}: file is empty")
    lines = text.splitlines()
    # yfinance's three-line header: Price,... / Ticker,... / Date,,,,
    if (
        len(lines) > 3
        and lines[0].lower().startswith(b"price,")
        and lines[1].lower().startswith(b"ticker,")
    ):
        header = lines[0].split(b",")
        header[0] = b"Date"
        text = b"\n".join([b",".join(header), *lines[3:]])
    try:
        return pl.read_csv(io.BytesIO(text), infer_schema_length=10000, try_parse_dates=False)
    except Exception as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc})") from None


def check_tz(tz: str) -> str:
    """``tz`` if it names a time zone, else an InputError.

    Examples
    --------
    >>> check_tz("America/New_York")
    'America/New_York'
    """
    from tickwise.timeframes import is_time_zone

    if not is_time_zone(tz):
        raise InputError(f"input time zone must be a name like UTC or America/New_York, was {tz!r}")
    return tz


def _localised(parsed: pl.Series, tz: str) -> pl.Series:
    """Naive date-times read as wall-clock time in ``tz``, in UTC."""
    if tz == "UTC":
        return parsed.dt.replace_time_zone("UTC")
    out = parsed.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
    gone = out.is_null() & parsed.is_not_null()
    if gone.any():
        raise InputError(f"timestamp {parsed.filter(gone)[0]} does not exist in {tz} (a daylight-saving gap)")
    return out.dt.convert_time_zone("UTC")


def _parse_time(col: pl.Series, tz: str = "UTC") -> pl.Series:
    if col.dtype == pl.Datetime:
        dt = col if col.dtype.time_zone else _localised(col, tz)  # type: ignore[union-attr]
        return dt.dt.convert_time_zone("UTC").dt.cast_time_unit("ns")
    if col.dtype == pl.Date:
        return col.cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
    if col.dtype.is_integer():
        # integers: epoch ns / ms / s by magnitude, or yyyymmdd
        sample = int(col.drop_nulls().max() or 0)
        if 19000101 <= sample <= 21001231:
            return _parse_time(col.cast(pl.Utf8))
        unit = 1 if sample > 10**17 else 1_000_000 if sample > 10**11 else 1_000_000_000
        return (col.cast(pl.Int64) * unit).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
    text = col.cast(pl.Utf8).str.strip_chars()
    for fmt in _DATE_FORMATS:
        parsed = text.str.to_datetime(format=fmt, strict=False, time_unit="ns")
        if parsed.null_count() == text.null_count():
            if parsed.dtype.time_zone is None:  # type: ignore[union-attr]
                return _localised(parsed, tz if "%H" in fmt else "UTC")
            return parsed.dt.convert_time_zone("UTC")
    raise InputError(
        f"timestamp column {col.name!r} must hold dates like 2024-01-31, 2024-01-31 09:30:00+00:00 "
        f"or 1/31/2024, was e.g. {text.drop_nulls().head(1).to_list()}"
    )


def _normalise(raw: pl.DataFrame, path: Path, symbol: str | None, tz: str = "UTC") -> tuple[pl.DataFrame, str]:
    lower = {c: c.strip().lower().replace(" ", "_") for c in raw.columns}
    time_col = None
    for name in _TIME_NAMES:
        hits = [c for c, low in lower.items() if low == name]
        if hits:
            time_col = hits[0]
            break
    if time_col is None:
        raise InputError(
            f"{path}: a date or datetime column is needed (date, datetime, timestamp, ts), "
            f"was columns {raw.columns}"
        )
    out = {"ts": _parse_time(raw[time_col], tz)}
    for c, low in lower.items():
        canon = _CANON.get(low)
        if canon and canon not in out:
            out[canon] = raw[c]
        if low in _SIZE_NAMES and "size" not in out:
            out["size"] = raw[c]
    sym_cols = [c for c, low in lower.items() if low in _SYMBOL_NAMES]
    if symbol is not None:
        out["symbol"] = pl.Series("symbol", [symbol] * raw.height)
    elif sym_cols:
        out["symbol"] = raw[sym_cols[0]].cast(pl.Utf8)
    else:
        out["symbol"] = pl.Series("symbol", [symbol_from_path(path)] * raw.height)
    frame = pl.DataFrame(out)
    if {"open", "high", "low", "close"} <= set(frame.columns):
        return frame, "bars"
    if "price" in frame.columns:
        return frame, "ticks"
    raise InputError(
        f"{path}: expected OHLC columns (open, high, low, close) or tick columns (price, size), "
        f"was columns {raw.columns}"
    )


def infer_timeframe(ts: pl.Series) -> str:
    """Guess the bar interval from the median gap between consecutive timestamps.

    Examples
    --------
    >>> import datetime as dt
    >>> s = pl.Series([dt.datetime(2024, 1, d) for d in (1, 2, 3, 5)])
    >>> infer_timeframe(s)
    '1d'
    """
    gaps = ts.sort().diff().drop_nulls().dt.total_nanoseconds()
    gaps = gaps.filter(gaps > 0)
    if gaps.len() == 0:
        return "1d"
    median = float(gaps.median())  # type: ignore[arg-type]
    for name in ("1s", "1m", "5m", "15m", "30m", "1h", "4h", "1d", "7d"):
        if median <= timeframe_ns(name) * 1.5:
            return name
    return "7d"


def _reject(frame: pl.DataFrame, mask: pl.Series, reason: str) -> pl.DataFrame:
    rows = frame.filter(mask)
    return pl.DataFrame({
        "reason": [reason] * rows.height,
        "payload": rows.with_columns(pl.col("ts").cast(pl.Utf8)).select(pl.struct(pl.all()).struct.json_encode()).to_series(),
    }, schema={"reason": pl.Utf8, "payload": pl.Utf8})


def load_bars(path: str | Path, *, symbol: str | None = None, timeframe: str | None = None,
              tz: str = "UTC") -> BarFile:
    """Read a bars (or ticks) file into valid rows and rejected rows.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.csv")
    >>> _ = open(p, "w").write("Date,Open,High,Low,Close,Volume\\n2024-01-02,1,2,0.5,1.5,10\\n")
    >>> load_bars(p, symbol="X").bars.select("symbol", "close").row(0)
    ('X', 1.5)
    """
    path = Path(path)
    if timeframe is not None:
        timeframe_ns(timeframe)
    frame, kind = _normalise(_read_raw(path), path, symbol, check_tz(tz))
    if kind == "ticks":
        return BarFile(frame, pl.DataFrame(schema={"reason": pl.Utf8, "payload": pl.Utf8}), "ticks")
    numeric = ["open", "high", "low", "close", "volume", "vwap"]
    frame = frame.with_columns(
        [pl.col(c).cast(pl.Float64, strict=False) for c in numeric if c in frame.columns]
    )
    if "volume" not in frame.columns:
        frame = frame.with_columns(pl.lit(0.0).alias("volume"))
    if "trades" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias("trades"))
    if "vwap" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("vwap"))
    tf = timeframe or infer_timeframe(frame["ts"])
    frame = frame.with_columns(pl.lit(tf).alias("timeframe"), pl.col("trades").cast(pl.Int64, strict=False))
    prices = pl.col("open"), pl.col("high"), pl.col("low"), pl.col("close")
    finite = pl.all_horizontal([p.is_finite() & (p > 0) for p in prices]).fill_null(False)
    coherent = (pl.col("low") <= pl.min_horizontal("open", "close")) & (
        pl.col("high") >= pl.max_horizontal("open", "close")
    )
    volume_ok = (pl.col("volume").is_finite() & (pl.col("volume") >= 0)).fill_null(False)
    reasons = (
        pl.when(pl.col("ts").is_null()).then(pl.lit("bad_timestamp"))
        .when(~finite).then(pl.lit("bad_price"))
        .when(~coherent.fill_null(False)).then(pl.lit("incoherent_ohlc"))
        .when(~volume_ok).then(pl.lit("bad_volume"))
        .otherwise(pl.lit(None))
    )
    frame = frame.with_columns(reasons.alias("_reason"))
    bad = frame.filter(pl.col("_reason").is_not_null())
    rejected = pl.DataFrame(schema={"reason": pl.Utf8, "payload": pl.Utf8})
    if bad.height:
        rejected = pl.concat([
            _reject(bad.drop("_reason"), bad["_reason"] == r, r) for r in bad["_reason"].unique().to_list()
        ])
    good = frame.filter(pl.col("_reason").is_null()).drop("_reason")
    dup = good.select(pl.struct("symbol", "ts").is_duplicated()).to_series()
    if dup.any():
        rejected = pl.concat([rejected, _reject(good, dup & good.select(
            pl.struct("symbol", "ts").is_first_distinct().not_()).to_series(), "duplicate")])
        good = good.unique(subset=["symbol", "ts"], keep="first", maintain_order=True)
    bars = good.select(
        "symbol", "timeframe", "ts", "open", "high", "low", "close", "volume", "trades", "vwap"
    ).sort("symbol", "ts")
    return BarFile(bars, rejected, "bars")


def read_bars(path: str | Path, *, symbol: str | None = None, timeframe: str | None = None,
              tz: str = "UTC") -> pl.DataFrame:
    """Read the valid bars of a file (see `load_bars` for the rejected rows).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "aapl.us.txt")
    >>> _ = open(p, "w").write("Date,Open,High,Low,Close,Volume,OpenInt\\n2024-01-02,1,2,0.5,1.5,10,0\\n")
    >>> read_bars(p)["symbol"].to_list()
    ['AAPL']
    """
    return read_bar_file(path, symbol=symbol, timeframe=timeframe, tz=tz).bars


def read_bar_file(path: str | Path, *, symbol: str | None = None, timeframe: str | None = None,
                  tz: str = "UTC") -> BarFile:
    """`load_bars` of a file that must hold bars, at least one of them valid: its valid bars and
    the rows rejected, each with its reason (`InputError` otherwise)."""
    loaded = load_bars(path, symbol=symbol, timeframe=timeframe, tz=tz)
    if loaded.kind != "bars":
        raise InputError(f"{path}: expected bars (open, high, low, close), found a tick file")
    if loaded.bars.height == 0:
        raise InputError(f"{path}: no valid bars ({loaded.rejected.height} rows rejected)")
    return loaded


def read_ticks(path: str | Path, *, symbol: str | None = None, tz: str = "UTC") -> pl.DataFrame:
    """Read a tick file into the tick columns (symbol, ts_event ns, price, size, id)."""
    loaded = load_bars(path, symbol=symbol, tz=tz)
    if loaded.kind != "ticks":
        raise InputError(f"{path}: expected ticks (price, size), found bars")
    frame = loaded.bars
    size = pl.col("size") if "size" in frame.columns else pl.col("volume") if "volume" in frame.columns else pl.lit(0.0)
    return frame.select(
        pl.col("symbol"),
        pl.col("ts").dt.epoch("ns").alias("ts_event"),
        pl.col("price").cast(pl.Float64, strict=False),
        size.cast(pl.Float64, strict=False).alias("size"),
        (pl.col("id").cast(pl.Utf8) if "id" in frame.columns else pl.lit(None, dtype=pl.Utf8)).alias("id"),
    )
