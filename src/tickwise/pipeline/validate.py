"""Check incoming ticks and split them into valid rows and dead letters with a reason.

Two levels, both vectorised over a batch:

- `decode_lines` turns newline-delimited JSON (the socket wire format) into tick columns;
  a line that is not a JSON object with the tick fields is rejected as ``malformed``.
- `validate_ticks` checks values: ``bad_symbol``, ``bad_price`` (missing, non-finite or
  <= 0), ``bad_size`` (missing, non-finite or < 0), ``bad_timestamp`` (before 1970 or
  more than ``max_future_s`` ahead of the clock).

Dead letters keep the original payload (the JSON line, or the row re-encoded as JSON).
"""

from __future__ import annotations

import datetime as dt
import io
import time

import msgspec
import polars as pl

TICK_POLARS_SCHEMA = {
    "symbol": pl.Utf8,
    "ts_event": pl.Int64,
    "price": pl.Float64,
    "size": pl.Float64,
    "id": pl.Utf8,
}
DEADLETTER_COLUMNS = {"ts": pl.Datetime("us", "UTC"), "source": pl.Utf8, "reason": pl.Utf8, "payload": pl.Utf8}
_SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/^=-]{0,31}$"


class WireTick(msgspec.Struct, forbid_unknown_fields=False):
    """One tick on the wire: ``{"symbol", "ts", "price", "size", "id"?}``.

    ``ts`` is UTC nanoseconds since the epoch, or an ISO 8601 string with a zone.
    """

    symbol: str
    ts: int | str
    price: float
    size: float
    id: str | int | None = None


_line_decoder = msgspec.json.Decoder(WireTick)


def empty_ticks() -> pl.DataFrame:
    return pl.DataFrame(schema=TICK_POLARS_SCHEMA)


def empty_deadletters() -> pl.DataFrame:
    return pl.DataFrame(schema=DEADLETTER_COLUMNS)


def deadletters(source: str, reasons: list[str] | pl.Series, payloads: list[str] | pl.Series) -> pl.DataFrame:
    """Build dead-letter rows stamped now."""
    n = len(reasons)
    now = dt.datetime.now(dt.UTC)
    return pl.DataFrame(
        {"ts": [now] * n, "source": [source] * n, "reason": reasons, "payload": payloads},
        schema=DEADLETTER_COLUMNS,
    )


def _iso_to_ns(text: str) -> int:
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("timestamp needs a zone")
    delta = parsed - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def decode_lines(lines: list[bytes], *, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode JSON lines into tick columns; undecodable lines become dead letters.

    Examples
    --------
    >>> ticks, dead = decode_lines([b'{"symbol":"A","ts":1,"price":2.0,"size":3}', b'{oops'], source="t")
    >>> ticks.height, dead["reason"].str.split(":").list.first().to_list()
    (1, ['malformed'])
    """
    lines = [ln for ln in (x.strip() for x in lines) if ln]
    if not lines:
        return empty_ticks(), empty_deadletters()
    try:  # fast path: the whole batch is well formed with integer timestamps
        frame = pl.read_ndjson(
            io.BytesIO(b"\n".join(lines)),
            schema={"symbol": pl.Utf8, "ts": pl.Int64, "price": pl.Float64, "size": pl.Float64, "id": pl.Utf8},
        )
        if frame.height == len(lines) and frame.select(
            pl.col("symbol").is_not_null().all() & pl.col("ts").is_not_null().all()
            & pl.col("price").is_not_null().all() & pl.col("size").is_not_null().all()
        ).item():
            return frame.rename({"ts": "ts_event"}).select(list(TICK_POLARS_SCHEMA)), empty_deadletters()
    except (pl.exceptions.PolarsError, ValueError, TypeError, OverflowError, UnicodeDecodeError):
        pass  # a line the fast reader cannot take: the careful path below finds which
    rows: dict[str, list] = {k: [] for k in TICK_POLARS_SCHEMA}
    bad_reasons: list[str] = []
    bad_payloads: list[str] = []
    for line in lines:
        try:
            tick = _line_decoder.decode(line)
            ts = tick.ts if isinstance(tick.ts, int) else _iso_to_ns(tick.ts)
        except (msgspec.DecodeError, ValueError, OverflowError) as exc:
            bad_reasons.append(f"malformed: {str(exc)[:120]}")
            bad_payloads.append(line.decode("utf-8", "replace"))
            continue
        if not -(2**63) <= ts < 2**63:
            bad_reasons.append("bad_timestamp")
            bad_payloads.append(line.decode("utf-8", "replace"))
            continue
        rows["symbol"].append(tick.symbol)
        rows["ts_event"].append(ts)
        rows["price"].append(tick.price)
        rows["size"].append(tick.size)
        rows["id"].append(None if tick.id is None else str(tick.id))
    ticks = pl.DataFrame(rows, schema=TICK_POLARS_SCHEMA)
    dead = deadletters(source, bad_reasons, bad_payloads) if bad_reasons else empty_deadletters()
    return ticks, dead


def validate_ticks(
    ticks: pl.DataFrame, *, source: str, now_ns: int | None = None, max_future_s: float = 60.0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split decoded ticks into valid rows and dead letters with the first failed check.

    Examples
    --------
    >>> t = pl.DataFrame({"symbol": ["A", "A"], "ts_event": [1, 2], "price": [1.0, float("nan")],
    ...                   "size": [1.0, 1.0], "id": [None, None]}, schema=TICK_POLARS_SCHEMA)
    >>> ok, dead = validate_ticks(t, source="t")
    >>> ok.height, dead["reason"].to_list()
    (1, ['bad_price'])
    """
    if ticks.height == 0:
        return ticks, empty_deadletters()
    now_ns = time.time_ns() if now_ns is None else now_ns
    limit = now_ns + int(max_future_s * 1e9)
    sym, price, size, ts = pl.col("symbol"), pl.col("price"), pl.col("size"), pl.col("ts_event")
    reason = (
        pl.when(sym.is_null() | ~sym.str.contains(_SYMBOL_PATTERN).fill_null(False)).then(pl.lit("bad_symbol"))
        .when(price.is_null() | ~price.is_finite() | (price <= 0)).then(pl.lit("bad_price"))
        .when(size.is_null() | ~size.is_finite() | (size < 0)).then(pl.lit("bad_size"))
        .when(ts.is_null() | (ts < 0) | (ts > limit)).then(pl.lit("bad_timestamp"))
        .otherwise(pl.lit(None, dtype=pl.Utf8))
    )
    checked = ticks.with_columns(reason.alias("_reason"))
    bad = checked.filter(pl.col("_reason").is_not_null())
    if bad.height == 0:
        return ticks, empty_deadletters()
    good = checked.filter(pl.col("_reason").is_null()).drop("_reason")
    return good, rejected_to_deadletters(bad.rename({"_reason": "reason"}), source=source)


def rejected_to_deadletters(rejected: pl.DataFrame, *, source: str) -> pl.DataFrame:
    """Dead-letter rows for tick rows that carry a ``reason`` column."""
    if rejected.height == 0:
        return empty_deadletters()
    payloads = rejected.drop("reason").select(pl.struct(pl.all()).struct.json_encode()).to_series()
    return deadletters(source, rejected["reason"], payloads)
