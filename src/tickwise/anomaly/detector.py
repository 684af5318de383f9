"""One series: a streaming detector (`learn_one` / `score_one`) and its batch form (`fit` / `score`).

Score before learn: `score_one(x)` uses only what was learned before ``x``; call
`learn_one(x)` afterwards. `score(data)` returns, for every row of a series, exactly the
score the streaming form would have given it, starting from the detector's current model
(models with a fit are retrained on the schedule, on past rows only: walk-forward). A row
whose bands or model are not ready scores NaN.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from tickwise.anomaly.bands import BandBank, BandOutput, Bands, band_zscores
from tickwise.anomaly.base import Schedule, WindowModel
from tickwise.anomaly.explain import Explanation, describe, with_market
from tickwise.anomaly.features import RANGE_FLOOR, FeatureSpec
from tickwise.anomaly.market import uses_context
from tickwise.anomaly.seasonal import Seasonality, SeasonBank, adjust_series
from tickwise.exceptions import InputError

FloatArray = np.ndarray


@dataclass(slots=True)
class Scores:
    """Batch scores of one series, with what is needed to explain any row."""

    score: FloatArray
    names: tuple[str, ...]
    raw: FloatArray
    center: FloatArray
    z: FloatArray
    ready: np.ndarray
    windows: FloatArray
    segment: np.ndarray
    models: list[WindowModel | None] = field(default_factory=list)
    #: the market context each row was scored with (`tickwise.anomaly.market`), or None: alone
    context: FloatArray | None = None


def windows_of(z: FloatArray, lookback: int, *, pad: float = 0.0) -> FloatArray:
    """Windows ``(n, lookback, F)`` ending at each row, padded with ``pad`` before the start.

    Examples
    --------
    >>> windows_of(np.arange(3.0).reshape(3, 1), 2)[:, :, 0].tolist()
    [[0.0, 0.0], [0.0, 1.0], [1.0, 2.0]]
    """
    f = z.shape[1]
    padded = np.vstack([np.full((lookback - 1, f), pad), z])
    return np.lib.stride_tricks.sliding_window_view(padded, (lookback, f))[:, 0].copy()


def spec_for(model: WindowModel, spec: FeatureSpec | None) -> FeatureSpec:
    """What a model reads: its own ``spec`` where it declares one and ``spec`` is of the same
    kind (bars for a model that wants more of each bar, the classifier's shapes), else
    ``spec``, else plain bars.

    Examples
    --------
    >>> from tickwise.anomaly.zscore import ZScoreModel
    >>> spec_for(ZScoreModel(), None).names
    ('return', 'range', 'volume', 'gap', 'swing')
    """
    own = getattr(model, "spec", None)
    if own is not None and (spec is None or spec.kind == own.kind):
        return own
    return spec or FeatureSpec.bars()


def shown(names: tuple[str, ...], raw: FloatArray, adjusted: FloatArray) -> FloatArray:
    """What explanations quote: percentages (return, gap, swing) of the bar as it is, and the
    log-ratio features (volume, range) after the time-of-day profile, whose band they are
    measured against ("volume 4.0x its recent level" at the same time of day)."""
    if adjusted is raw:
        return raw
    keep = np.array([n in ("return", "gap", "swing") for n in names])
    if "range" in names:  # a frozen bar is named as such whatever its slot's profile
        i = names.index("range")
        frozen = raw[..., i] <= np.log(RANGE_FLOOR) + 1e-9
        keep = keep | (frozen[..., None] & (np.arange(len(names)) == i))
    return np.where(keep, raw, adjusted)


def record_ts(x: Mapping[str, object]) -> object:
    """A record's ``ts`` (epoch nanoseconds or a datetime), which the time-of-day profile needs."""
    try:
        return x["ts"]
    except KeyError:
        raise InputError("record must have a 'ts' field for the time-of-day profile of intraday bars") from None


def reads_raw(model: WindowModel) -> bool:
    """Whether a model's windows hold raw feature rows (`StaleModel`: runs of flat bars) rather
    than band z-scores; raw windows are padded with NaN before a series' first bar."""
    return bool(getattr(model, "reads_raw", False))


def empty_windows(model: WindowModel, rows: int, features: int) -> FloatArray:
    """The windows of series that have no bar yet: zeros of z-scores, NaN of raw rows."""
    return np.full((rows, model.lookback, features), np.nan if reads_raw(model) else 0.0)


def with_reason(model: WindowModel | None, window: FloatArray, explanation: Explanation) -> Explanation:
    """Append a model's words for a multi-bar pattern (`TransientModel.reason`), if any, and
    take the model's own ``kind`` where it names one (`StaleModel`: a frozen price)."""
    reason = getattr(model, "reason", None)
    note = reason(window) if reason is not None else ""
    if not note:
        return explanation
    kind = getattr(model, "kind", None) or explanation.kind
    return replace(explanation, text=f"{explanation.text}; {note}", kind=kind)


class Detector:
    """Anomaly detector for one series (one symbol), streaming and batch.

    Parameters
    ----------
    model
        A `WindowModel` (`ZScoreModel`, `IsolationForestModel`, `AutoencoderModel`).
    spec
        What the records are (`spec_for`: the model's own ``spec`` where it has one of the same kind, else plain bars).
    bands
        How features are z-scored against their past.
    schedule
        When models with a fit are retrained.
    seasonality
        The time-of-day profile (`tickwise.anomaly.seasonal`), for intraday bars: records then
        need their ``ts``. ``None`` (daily bars, plain value series) leaves features as they are.

    Examples
    --------
    >>> from tickwise.anomaly.zscore import ZScoreModel
    >>> det = Detector(ZScoreModel(), bands=Bands(window=20, min_periods=10))
    >>> for i in range(30):
    ...     det.learn_one({"open": 100, "high": 101 + i % 2, "low": 99, "close": 100, "volume": 1000})
    >>> spike = {"open": 100, "high": 101, "low": 99, "close": 100, "volume": 20000}
    >>> det.score_one(spike) > 10, det.explain_one(spike).top_feature
    (True, 'volume')
    """

    def __init__(self, model: WindowModel, *, spec: FeatureSpec | None = None,
                 bands: Bands | None = None, schedule: Schedule | None = None,
                 seasonality: Seasonality | None = None) -> None:
        self.model = model
        self.spec = spec_for(model, spec)
        self.seasonality = seasonality.for_columns(len(self.spec.names)) \
            if seasonality is not None and self.spec.kind == "bars" else None
        base = bands or Bands()
        self.bands = replace(base, links=base.links or self.spec.scale_links)
        self.schedule = schedule or Schedule()
        self.name = model.name
        self._fitted = not model.needs_fit
        self._train: deque[FloatArray] = deque(maxlen=self.schedule.max_train)
        self._since = 0
        self.reset_stream()

    # -- streaming -------------------------------------------------------------------------

    def reset_stream(self) -> None:
        """Forget the stream's feature state (the model and its training windows stay)."""
        n = len(self.spec.names)
        self._bank = BandBank(n, self.bands, capacity=1)
        self._rows = self._bank.rows_for(["series"])
        self._prev = np.full((1, self.spec.state_width), np.nan)
        self._window = empty_windows(self.model, 1, n)[0]
        self._season = SeasonBank(self.seasonality) if self.seasonality is not None else None

    def _step(self, x: Mapping[str, float]) -> tuple[FloatArray, FloatArray, FloatArray, bool, FloatArray,
                                                    FloatArray, np.ndarray | None]:
        raw, state = self.spec.rows(self.spec.fields_from_record(x), self._prev)
        feats, slot = raw, None
        if self._season is not None:
            slot = self.seasonality.slots([record_ts(x)])  # type: ignore[union-attr]
            feats = self._season.adjust(self._rows, slot, raw)
        out = self._bank.stats(self._rows, feats)
        window = np.vstack([self._window[1:], shown(self.spec.names, raw, feats) if reads_raw(self.model) else out.z])
        return raw, state, window, bool(out.ready[0]), out.center, feats, slot

    @property
    def is_ready(self) -> bool:
        """Whether the model is fitted (or needs no fit)."""
        return self._fitted

    def score_one(self, x: Mapping[str, float]) -> float:
        """Score one record against what was learned before it (NaN while warming up)."""
        _, _, window, ready, *_ = self._step(x)
        if not (ready and self._fitted):
            return float("nan")
        return float(self.model.score_windows(window[None])[0])

    def explain_one(self, x: Mapping[str, float]) -> Explanation:
        """Name the features that make one record stand out (call before `learn_one`)."""
        raw, _, window, _, center, feats, _ = self._step(x)
        contrib = self.model.attribute(window[None])[0] if self._fitted else np.abs(window[-1])
        quoted = shown(self.spec.names, raw, feats)[0]
        return with_reason(self.model, window, describe(self.spec.names, contrib, quoted, center[0], window[-1],
                                                        window_label=self._label()))

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Learn one record (after scoring it)."""
        raw, state, window, ready, _, feats, slot = self._step(x)
        if self._season is not None:
            self._season.learn(self._rows, slot, raw)
        self._bank.learn(self._rows, feats)
        self._prev = state
        self._window = window
        if ready and self.model.needs_fit:
            self._train.append(window)
            self._since += 1
            if self.schedule.due(fitted=self._fitted, n_train=len(self._train), since_fit=self._since):
                self.model.fit(np.stack(self._train))
                self._fitted = True
                self._since = 0

    # -- batch -----------------------------------------------------------------------------

    def _fields(self, data: pl.DataFrame | Mapping[str, FloatArray]) -> dict[str, FloatArray]:
        if isinstance(data, pl.DataFrame):
            return self.spec.fields_from_frame(data)
        return {k: np.asarray(data[k], dtype=np.float64) for k in self.spec.columns}

    def features(self, data: pl.DataFrame | Mapping[str, FloatArray]) -> tuple[FloatArray, BandOutput]:
        """Features as explanations quote them (`shown`) and their bands (z, centre, scale,
        ready) of a whole series."""
        raw = self.spec.batch(self._fields(data))
        feats = raw
        if self.seasonality is not None:
            if "ts" not in data:
                raise InputError("the time-of-day profile of intraday bars needs a 'ts' column, was none")
            ts = data["ts"]
            feats = adjust_series(raw, self.seasonality.slots(ts if isinstance(ts, pl.Series) else np.asarray(ts)),
                                  self.seasonality)
        return shown(self.spec.names, raw, feats), band_zscores(feats, self.bands)

    def fit(self, data: pl.DataFrame | Mapping[str, FloatArray]) -> Detector:
        """Train the model on every ready window of a series (no-op for band detectors)."""
        if self.model.needs_fit:
            _, out = self.features(data)
            wins = windows_of(out.z, self.model.lookback)[out.ready]
            if wins.shape[0] < 10:
                from tickwise.exceptions import DataError

                raise DataError(f"fit needs at least 10 ready rows, was {wins.shape[0]}")
            self._train.clear()
            self._train.extend(wins[-self.schedule.max_train:])
            self.model.fit(np.stack(self._train))
            self._fitted = True
            self._since = 0
        return self

    def score(self, data: pl.DataFrame | Mapping[str, FloatArray], *, context: FloatArray | None = None,
              features: tuple[FloatArray, BandOutput] | None = None) -> Scores:
        """Score every row as the streaming form would, walk-forward, without changing self.
        ``context``: the market context of every row (`tickwise.anomaly.market.score_together`
        computes it from other series), for a model that reads it; None scores the series alone.
        ``features``: ``self.features(data)`` where the caller has computed it already."""
        raw, out = self.features(data) if features is None else features
        if context is not None and context.shape[0] != raw.shape[0]:
            raise ValueError(f"one context row per bar: {context.shape[0]} rows for {raw.shape[0]} bars")
        context = context if uses_context(self.model) else None
        # the quoted features keep return and swing as they are (`shown`): what `StaleModel` reads
        wins = windows_of(raw, self.model.lookback, pad=np.nan) if reads_raw(self.model) \
            else windows_of(out.z, self.model.lookback)
        n = raw.shape[0]
        ready = out.ready
        models: list[WindowModel | None] = [self.model if self._fitted else None]
        segment = np.zeros(n, dtype=np.int64)
        score = np.full(n, np.nan)
        if self.model.needs_fit:
            train = deque(self._train, maxlen=self.schedule.max_train)
            fitted, since = self._fitted, self._since
            refits = []
            for t in np.flatnonzero(ready).tolist():
                train.append(wins[t])
                since += 1
                if self.schedule.due(fitted=fitted, n_train=len(train), since_fit=since):
                    model = self.model.clone()
                    model.fit(np.stack(train))
                    models.append(model)
                    refits.append(t)
                    fitted, since = True, 0
            bounds = [0, *(t + 1 for t in refits), n]
            for k in range(len(bounds) - 1):
                segment[bounds[k]:bounds[k + 1]] = k
        for k, model in enumerate(models):
            rows = np.flatnonzero((segment == k) & ready)
            if model is not None and rows.size:
                score[rows] = model.score_windows(wins[rows]) if context is None \
                    else model.score_windows(wins[rows], context[rows])  # type: ignore[call-arg]
        return Scores(score, self.spec.names, raw, out.center, out.z, ready, wins, segment, models, context)

    def explain(self, scores: Scores, i: int) -> Explanation:
        """Explain row ``i`` of a batch result with the model that scored it."""
        model = scores.models[int(scores.segment[i])]
        if model is None:
            contrib = np.abs(scores.z[i])
        elif scores.context is not None:
            contrib = model.attribute(scores.windows[i:i + 1], scores.context[i:i + 1])[0]  # type: ignore[call-arg]
        else:
            contrib = model.attribute(scores.windows[i:i + 1])[0]
        explanation = with_reason(model, scores.windows[i], describe(scores.names, contrib, scores.raw[i],
                                                                     scores.center[i], scores.z[i],
                                                                     window_label=self._label()))
        return with_market(explanation, None if scores.context is None else scores.context[i])

    def _label(self) -> str:
        return f"{self.bands.window}-bar" if self.bands.method == "rolling" else f"EWMA({self.bands.window})"
