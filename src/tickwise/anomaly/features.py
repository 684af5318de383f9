"""Raw per-bar features for anomaly detection, computed from the bar itself and the one before.

Two feature sets share one shape (a `FeatureSpec`): OHLCV bars give ``return`` (log close
over previous close), ``range`` (log of the high-low log range: a frozen bar, high == low,
is far below anything normal), ``volume`` (log1p volume minus its trailing EWMA over
`VOLUME_SPAN` bars, so slow drifts of activity do not widen the band a burst is measured
against; a bar without volume is not learned into that EWMA), ``gap`` (log open over previous close) and ``swing`` (the high-low log range
itself, linear: a flash crash's long lower shadow stands out here, where the log of the
range compresses it); a plain value series gives, per column, its ``level`` and its
``change`` from the previous row. ``FeatureSpec.bars(shapes=True)`` adds the bar's shape
(`SHAPE_FEATURES`: where the close lies in the high-low range, the body and the lower shadow
as shares of the range, the open-to-close return) and the log volume itself, for models that
learn combinations (the ``classifier`` detector): a level shift moves the gap but not the
bar's shape, a flash crash leaves a long lower shadow. A feature at row t uses row t and a state carried from
the rows before (previous close, the volume EWMA), so nothing here can look ahead.
Normalisation against the past (z-scores) is done by `tickwise.anomaly.bands`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from tickwise.exceptions import DataError, InputError

FloatArray = np.ndarray

#: The bar features, in column order.
BAR_FEATURES: tuple[str, ...] = ("return", "range", "volume", "gap", "swing")
#: The bar's shape and its log volume, after `BAR_FEATURES` in ``FeatureSpec.bars(shapes=True)``.
SHAPE_FEATURES: tuple[str, ...] = ("close_location", "body", "lower_shadow", "intrabar", "log_volume")
#: Span of the trailing EWMA of log volume that the ``volume`` feature is measured from.
VOLUME_SPAN = 10
_VOLUME_ALPHA = 2.0 / (VOLUME_SPAN + 1)
#: Added to the high-low log range before its log, so a frozen bar (high == low) is finite.
RANGE_FLOOR = 1e-5
_BAR_FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """How records become raw feature rows.

    ``kind`` is ``"bars"`` (fields open, high, low, close, volume) or ``"values"`` (the
    named numeric ``columns``). ``state_width`` is how many numbers of the previous record
    a stream keeps per symbol (previous close, or the previous values).

    Examples
    --------
    >>> spec = FeatureSpec.bars()
    >>> spec.names
    ('return', 'range', 'volume', 'gap', 'swing')
    >>> FeatureSpec.values(("cpu",)).names
    ('cpu', 'cpu_change')
    >>> len(FeatureSpec.bars(shapes=True).names)
    10
    """

    kind: str
    columns: tuple[str, ...]
    names: tuple[str, ...]

    @classmethod
    def bars(cls, *, shapes: bool = False) -> FeatureSpec:
        return cls("bars", _BAR_FIELDS, BAR_FEATURES + SHAPE_FEATURES if shapes else BAR_FEATURES)

    @classmethod
    def values(cls, columns: Sequence[str]) -> FeatureSpec:
        columns = tuple(columns)
        if not columns:
            raise InputError("at least one value column is needed, was none")
        names = tuple(n for c in columns for n in (c, f"{c}_change"))
        return cls("values", columns, names)

    @property
    def scale_links(self) -> tuple[tuple[int, int, float], ...]:
        """Scale floors between features (see `tickwise.anomaly.bands.Bands.links`)."""
        return ((3, 0, 1.0), (4, 0, 1.0)) if self.kind == "bars" else ()

    @property
    def state_width(self) -> int:
        return 2 if self.kind == "bars" else len(self.columns)

    def fields_from_frame(self, frame: pl.DataFrame) -> dict[str, FloatArray]:
        """Take this spec's columns out of a frame as float arrays (nulls are refused)."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise InputError(f"expected columns {list(self.columns)}, missing {missing}")
        out = {}
        for c in self.columns:
            col = frame.get_column(c).cast(pl.Float64, strict=False)
            if col.null_count():
                raise DataError(f"column {c!r} must be numeric without gaps, was {col.null_count()} null/non-numeric values")
            out[c] = col.to_numpy().astype(np.float64, copy=False)
        return out

    def fields_from_record(self, record: Mapping[str, float]) -> dict[str, FloatArray]:
        """One record (a bar or a row of values) as length-1 arrays."""
        try:
            return {c: np.array([float(record[c])]) for c in self.columns}
        except KeyError as exc:
            raise InputError(f"record must have fields {list(self.columns)}, was missing {exc}") from None

    def rows(self, fields: Mapping[str, FloatArray], prev: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Raw feature rows of m records given each one's previous state.

        ``prev`` is (m, state_width), NaN where there is no previous record. Returns the
        (m, len(names)) features and the new (m, state_width) state.
        """
        if self.kind == "bars":
            return _bar_rows(fields, prev, shapes=len(self.names) > len(BAR_FEATURES))
        return _value_rows(self.columns, fields, prev)

    def batch(self, fields: Mapping[str, FloatArray]) -> FloatArray:
        """Raw features of one series, each row from its own record and the state before it."""
        first = next(iter(fields.values()))
        n = first.shape[0]
        prev = np.full((n, self.state_width), np.nan)
        if n > 1:
            if self.kind == "bars":
                prev[1:, 0] = fields["close"][:-1]
                prev[1:, 1] = _volume_ewma(np.log1p(np.maximum(np.asarray(fields["volume"], dtype=np.float64), 0.0)))[:-1]
            else:
                prev[1:] = np.column_stack([fields[c][:-1] for c in self.columns])
        return self.rows(fields, prev)[0]


def _ewma_step(prev: FloatArray, x: FloatArray) -> FloatArray:
    """One EWMA update of log volume (the first value starts it); streaming and batch share this
    arithmetic. A bar without volume (log1p 0 = 0: a feed's gap, an empty bar) is not learned:
    it is flagged itself, but must not make the next ordinary bar look like a burst.

    Examples
    --------
    >>> _ewma_step(np.array([np.nan, 10.0, 10.0]), np.array([5.0, 0.0, 12.0])).tolist()
    [5.0, 10.0, 10.363636363636363]
    """
    return np.where(np.isnan(prev), x, np.where(x > 0, prev + _VOLUME_ALPHA * (x - prev), prev))


def _volume_ewma(lv: FloatArray) -> FloatArray:
    """The EWMA of log volume after each row (row t included)."""
    out = np.empty_like(lv)
    m = np.array([np.nan])
    for t in range(lv.shape[0]):
        m = _ewma_step(m, lv[t:t + 1])
        out[t] = m[0]
    return out


def _bar_rows(fields: Mapping[str, FloatArray], prev: FloatArray, *,
              shapes: bool = False) -> tuple[FloatArray, FloatArray]:
    o, h, lo, c, v = (np.asarray(fields[k], dtype=np.float64) for k in _BAR_FIELDS)
    if np.any(~np.isfinite(c) | (c <= 0) | (lo <= 0)):
        raise DataError("bar prices must be finite and > 0, was a non-positive or non-finite price")
    pc = prev[:, 0]
    pc = np.where(np.isnan(pc), o, pc)
    lv = np.log1p(np.maximum(v, 0.0))
    base = prev[:, 1]
    swing = np.log(np.maximum(h, lo) / lo)
    out = np.empty((c.shape[0], 10 if shapes else 5))
    out[:, 0] = np.log(c / pc)
    out[:, 1] = np.log(swing + RANGE_FLOOR)
    out[:, 2] = np.where(np.isnan(base), 0.0, lv - base)
    out[:, 3] = np.log(o / pc)
    out[:, 4] = swing
    if shapes:
        width = h - lo
        flat = width <= 0
        safe = np.where(flat, 1.0, width)
        out[:, 5] = np.where(flat, 0.5, (c - lo) / safe)
        out[:, 6] = np.where(flat, 0.0, np.abs(c - o) / safe)
        out[:, 7] = np.where(flat, 0.0, (np.minimum(o, c) - lo) / safe)
        out[:, 8] = np.log(c / o)
        out[:, 9] = lv
    return out, np.column_stack([c, _ewma_step(base, lv)])


def _value_rows(columns: tuple[str, ...], fields: Mapping[str, FloatArray],
                prev: FloatArray) -> tuple[FloatArray, FloatArray]:
    vals = np.column_stack([np.asarray(fields[c], dtype=np.float64) for c in columns])
    if not np.all(np.isfinite(vals)):
        raise DataError("values must be finite, was NaN or infinite")
    change = np.where(np.isnan(prev), 0.0, vals - prev)
    out = np.empty((vals.shape[0], 2 * len(columns)))
    out[:, 0::2] = vals
    out[:, 1::2] = change
    return out, vals.copy()
