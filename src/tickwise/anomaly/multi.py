"""Many symbols at once: one vectorised step scores the newest bar of every symbol.

`MultiSymbolDetector.step` takes one record per symbol (distinct symbols), computes their
raw features and band z-scores as arrays over symbols, scores the windows with one model
shared by all symbols (the features are already normalised per symbol), applies each
symbol's adaptive threshold, explains only the anomalies, and then learns (score before
learn). Models that need a fit are trained on the pooled windows of all symbols on the
schedule. For one symbol it gives the same scores as `Detector`.
"""

from __future__ import annotations

import functools
import io
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from tickwise.anomaly.bands import BandBank, Bands
from tickwise.anomaly.base import Schedule, WindowModel
from tickwise.anomaly.detector import empty_windows, reads_raw, shown, spec_for, with_reason
from tickwise.anomaly.explain import Explanation, describe, with_market
from tickwise.anomaly.features import FeatureSpec
from tickwise.anomaly.market import market_context, uses_context
from tickwise.anomaly.seasonal import Seasonality, SeasonBank
from tickwise.anomaly.threshold import ThresholdBank, ThresholdSettings

log = logging.getLogger(__name__)

FloatArray = np.ndarray
#: Most bars a detector holds while its model cannot score yet (the classifier's first fit runs
#: in the background) to score once it can; past it the oldest are scored by the others only.
BACKLOG = 50_000
#: Bar times whose bars stay peers of bars of the same time that come in a later step (on a
#: shared bus one bar time's bars arrive in several batches).
PEER_TIMES = 16


@dataclass(slots=True)
class StepResult:
    """Scores of one step, one entry per input symbol; explanations only for anomalies."""

    symbols: list[str]
    score: FloatArray
    threshold: FloatArray
    is_anomaly: np.ndarray
    explanations: dict[int, Explanation]
    #: anomalies among bars of earlier steps that waited for the model (`MultiSymbolDetector.step`)
    late: list[LateAnomaly] = field(default_factory=list)


@dataclass(slots=True)
class LateAnomaly:
    """An anomaly found in a bar stepped while the model could not score yet, once it could."""

    symbol: str
    ts: int | None
    score: float
    threshold: float
    explanation: Explanation | None


@dataclass(slots=True)
class _Held:
    """The ready bars of one step that waited for the model: what scoring and explaining them needs."""

    symbols: list[str]
    rows: np.ndarray
    windows: FloatArray
    context: FloatArray | None
    ts: np.ndarray | None
    quoted: FloatArray
    center: FloatArray
    z: FloatArray


class MultiSymbolDetector:
    """A detector over many symbols with vectorised state.

    Examples
    --------
    >>> from tickwise.anomaly.zscore import ZScoreModel
    >>> det = MultiSymbolDetector(ZScoreModel(), bands=Bands(window=20, min_periods=10),
    ...                           thresholds=ThresholdSettings(min_scores=20, q=0.01))
    >>> bar = {"open": np.full(2, 100.0), "high": np.full(2, 101.0), "low": np.full(2, 99.0),
    ...        "close": np.full(2, 100.0)}
    >>> for i in range(60):
    ...     _ = det.step(["A", "B"], {**bar, "volume": np.full(2, 1000.0 + 10 * (i % 5))})
    >>> r = det.step(["A", "B"], {**bar, "volume": np.array([50000.0, 1010.0])})
    >>> r.is_anomaly.tolist(), r.explanations[0].kind
    ([True, False], 'volume_burst')
    """

    def __init__(self, model: WindowModel, *, spec: FeatureSpec | None = None,
                 bands: Bands | None = None, schedule: Schedule | None = None,
                 thresholds: ThresholdSettings | None = None, seasonality: Seasonality | None = None,
                 market: bool = True) -> None:
        self.model = model
        #: a model that reads the market context gets it from the step's other symbols (off: every bar alone)
        self.market = market
        self.name = model.name
        self.spec = spec_for(model, spec)
        self.seasonality = seasonality.for_columns(len(self.spec.names)) \
            if seasonality is not None and self.spec.kind == "bars" else None
        self._season = SeasonBank(self.seasonality) if self.seasonality is not None else None
        base = bands or Bands()
        self.bands = replace(base, links=base.links or self.spec.scale_links)
        self.schedule = schedule or Schedule(min_train=2000, refit_every=20000, max_train=20000)
        n = len(self.spec.names)
        self.bank = BandBank(n, self.bands, capacity=64)
        self.thresholds = ThresholdBank(thresholds or ThresholdSettings(), capacity=64)
        self._prev = np.full((64, self.spec.state_width), np.nan)
        self._windows = empty_windows(model, 64, n)
        self._train: deque[FloatArray] = deque(maxlen=self.schedule.max_train)
        self._since = 0
        self._fitted = not model.needs_fit
        self.fits = 0
        self._config: str | None = None
        self._fit_data: FloatArray | None = None  # the windows of the last fit (`export_model_state`)
        self._held: list[_Held] = []  # steps waiting for the model, oldest first
        self._held_rows = 0
        #: bar time -> (rows, z) of its ready bars stepped so far (`_context`)
        self._peers: dict[int, tuple[np.ndarray, FloatArray]] = {}

    def _grow(self, rows: np.ndarray) -> None:
        need = int(rows.max()) + 1 if rows.size else 0
        if need > self._prev.shape[0]:
            cap = max(need, 2 * self._prev.shape[0])
            prev = np.full((cap, self._prev.shape[1]), np.nan)
            prev[: self._prev.shape[0]] = self._prev
            wins = empty_windows(self.model, cap, self._windows.shape[2])
            wins[: self._windows.shape[0]] = self._windows
            self._prev, self._windows = prev, wins

    def step(self, symbols: Sequence[str], fields: Mapping[str, FloatArray], *,
             explain: bool = True, ts: FloatArray | None = None) -> StepResult:
        """Score then learn one record per symbol (symbols must be distinct); ``ts`` (epoch
        nanoseconds per symbol) is needed with a time-of-day profile.

        A fitted model may not be able to score yet (the classifier's first fit runs in the
        background): its bars are then learned and held, and the first step it can score scores
        them first, oldest first, through the same thresholds (`StepResult.late`), so a fit that
        comes late loses no bar (up to `BACKLOG` bars)."""
        p = self._prepare(symbols, fields, ts)
        context = self._context(p, ts)
        late: list[LateAnomaly] = []
        usable = self._usable(None if context is None else context[p.ready])
        if self._held:
            if usable and self._usable(self._held_context(self._held)):
                late = self._score_held(explain)
            else:
                usable = False  # a symbol's scores go through its threshold in order: this step waits too
        live = p.ready if usable else np.zeros(p.rows.size, dtype=bool)
        score = np.full(p.rows.size, np.nan)
        if np.any(live):
            score[live] = self._score(p.windows[live], None if context is None else context[live])
        threshold = self.thresholds.update(p.rows, score)
        is_anomaly = score > threshold
        explanations: dict[int, Explanation] = {}
        if explain and np.any(is_anomaly):
            idx = np.flatnonzero(is_anomaly)
            quoted = shown(self.spec.names, p.raw, p.feats)
            found = self._explain(p.windows[idx], None if context is None else context[idx], quoted[idx],
                                  p.center[idx], p.z[idx])
            explanations = dict(zip(idx.tolist(), found, strict=True))
        if not usable and self._fitted and np.any(p.ready):
            self._hold(symbols, p, context, ts)
        if self._learn(p):
            self._fit()
        return StepResult(list(symbols), score, threshold, is_anomaly, explanations, late)

    def _explain(self, windows: FloatArray, context: FloatArray | None, quoted: FloatArray, center: FloatArray,
                 z: FloatArray) -> list[Explanation]:
        """Explanations of flagged windows (with their market context, quoted features, band centres and z)."""
        contrib = self.model.attribute(windows) if context is None \
            else self.model.attribute(windows, context)  # type: ignore[call-arg]
        label = f"{self.bands.window}-bar" if self.bands.method == "rolling" else f"EWMA({self.bands.window})"
        return [with_market(with_reason(self.model, windows[j], describe(
            self.spec.names, contrib[j], quoted[j], center[j], z[j], window_label=label)),
            None if context is None else context[j]) for j in range(windows.shape[0])]

    def _hold(self, symbols: Sequence[str], p: _Prepared, context: FloatArray | None, ts: FloatArray | None) -> None:
        """Keep a step's ready bars for the model to score when it can (the oldest go past `BACKLOG`)."""
        r = p.ready
        quoted = shown(self.spec.names, p.raw, p.feats)
        self._held.append(_Held([s for s, ok in zip(symbols, r.tolist(), strict=True) if ok], p.rows[r],
                                p.windows[r], None if context is None else context[r],
                                None if ts is None else np.asarray(ts, dtype=np.int64)[r],
                                quoted[r], p.center[r], p.z[r]))
        self._held_rows += int(r.sum())
        while self._held_rows > BACKLOG:
            gone = self._held.pop(0)
            self._held_rows -= gone.rows.size
            log.warning("%s: the model is not ready yet; %d held bars dropped unscored by it (more than %d held)",
                        self.name, gone.rows.size, BACKLOG)

    @staticmethod
    def _held_context(held: Sequence[_Held]) -> FloatArray | None:
        """The market context of held bars, in order (None for a model that reads none)."""
        return None if held[0].context is None else np.concatenate([h.context for h in held])  # type: ignore[misc]

    def _score_held(self, explain: bool) -> list[LateAnomaly]:
        """Score the held bars, oldest step first, through the thresholds; their anomalies."""
        held, self._held, self._held_rows = self._held, [], 0
        scores = self._score(np.concatenate([h.windows for h in held]), self._held_context(held))
        late: list[LateAnomaly] = []
        at = 0
        for h in held:
            s = scores[at:at + h.rows.size]
            at += h.rows.size
            th = self.thresholds.update(h.rows, s)
            idx = np.flatnonzero(s > th)
            if idx.size == 0:
                continue
            found: list[Explanation | None] = list(self._explain(
                h.windows[idx], None if h.context is None else h.context[idx], h.quoted[idx], h.center[idx],
                h.z[idx])) if explain else [None] * idx.size
            late += [LateAnomaly(h.symbols[i], None if h.ts is None else int(h.ts[i]), float(s[i]), float(th[i]), e)
                     for i, e in zip(idx.tolist(), found, strict=True)]
        return late

    def warm(self, steps: Iterable[tuple[Sequence[str], Mapping[str, FloatArray], FloatArray | None]], *,
             batch: int = 50_000, tick: Callable[[], None] | None = None) -> int:
        """Score then learn many steps ``(symbols, fields, ts)``, in order, producing nothing:
        the state afterwards is the one `step` leaves after the same steps. The windows of
        many steps are scored in one model call (up to ``batch`` windows, and never across a
        refit), which is what makes it fast: a tree ensemble costs mostly per call. ``tick``
        is called after each step. Returns the number of records stepped.

        Examples
        --------
        >>> from tickwise.anomaly.zscore import ZScoreModel
        >>> rng = np.random.default_rng(1)
        >>> bars = [{"open": np.full(2, 100.0), "high": np.full(2, 101.0), "low": np.full(2, 99.0),
        ...          "close": 100 + rng.normal(0, 1, 2), "volume": rng.lognormal(7, 0.3, 2)} for _ in range(300)]
        >>> def detector():
        ...     return MultiSymbolDetector(ZScoreModel(), bands=Bands(window=20, min_periods=10),
        ...                                thresholds=ThresholdSettings(min_scores=20, q=0.01))
        >>> a, b = detector(), detector()
        >>> for bar in bars[:-1]:
        ...     _ = a.step(["A", "B"], bar)
        >>> b.warm((["A", "B"], bar, None) for bar in bars[:-1])
        598
        >>> last = a.step(["A", "B"], bars[-1]), b.step(["A", "B"], bars[-1])
        >>> np.array_equal(last[0].score, last[1].score) and np.array_equal(last[0].threshold, last[1].threshold)
        True
        """
        # (rows, ready, windows of ready rows, their market context or None)
        queued: list[tuple[np.ndarray, np.ndarray, FloatArray, FloatArray | None]] = []
        n_queued = done = 0
        # a pinned threshold learns nothing from scores (`stale`): with no model to fit, the
        # state is the features' alone and the windows need not be scored
        scoreless = self.thresholds.settings.pinned and not self.model.needs_fit

        def flush() -> None:
            nonlocal n_queued
            contexts = None if not queued or queued[0][3] is None else np.concatenate([c for *_, c in queued])
            usable = self._usable(contexts)
            scores = np.empty(0)
            if usable and n_queued:
                scores = self._score(np.concatenate([w for _, _, w, _ in queued]), contexts)
            at = 0
            for rows, ready, _, _ in queued:
                score = np.full(rows.size, np.nan)
                if usable:
                    k = int(ready.sum())
                    score[ready] = scores[at:at + k]
                    at += k
                self.thresholds.update(rows, score)
            queued.clear()
            n_queued = 0

        for symbols, fields, ts in steps:
            p = self._prepare(symbols, fields, ts)
            context = self._context(p, ts)
            done += p.rows.size
            if scoreless:
                self._learn(p)
                if tick is not None:
                    tick()
                continue
            queued.append((p.rows, p.ready, p.windows[p.ready], None if context is None else context[p.ready]))
            n_queued += int(p.ready.sum())
            # a refit changes the model: what was queued is scored by the one before it
            fit_due = self._learn(p)
            if fit_due or n_queued >= batch:
                flush()
            if fit_due:
                self._fit()
            if tick is not None:
                tick()
        flush()
        return done

    @property
    def shared_model(self) -> bool:
        """Whether the model is fitted on the pooled windows of all symbols (``iforest``,
        ``autoencoder``): its state is saved once for the detector (`export_model_state`)
        beside each symbol's (`export_state`)."""
        return self.model.needs_fit

    def config(self) -> str:
        """A digest of everything a saved state depends on: the detector, its settings and the
        code that computes the state. A state saved under another digest must not be loaded."""
        if self._config is not None:
            return self._config
        from tickwise.anomaly.modelcache import fingerprint

        parts = [self.name, repr(self.spec.names), repr(self.bands), repr(self.thresholds.settings),
                 repr(self.seasonality), str(self.model.lookback), getattr(self.model, "identity", ""),
                 _state_code_digest(), *(() if self.market or not uses_context(self.model) else ("alone",))]
        self._config = fingerprint(parts)
        return self._config

    def export_state(self, symbol: str) -> bytes:
        """The state of one symbol (bands, time-of-day profile, threshold, the last bars'
        features) as a NumPy ``.npz`` (no pickle): `import_state` in a detector with the same
        `config` continues exactly where this one is.

        Examples
        --------
        >>> from tickwise.anomaly.zscore import ZScoreModel
        >>> rng = np.random.default_rng(2)
        >>> bars = [{"open": np.full(1, 100.0), "high": np.full(1, 101.0), "low": np.full(1, 99.0),
        ...          "close": 100 + rng.normal(0, 1, 1), "volume": rng.lognormal(7, 0.3, 1)} for _ in range(300)]
        >>> def detector():
        ...     return MultiSymbolDetector(ZScoreModel(), bands=Bands(window=20, min_periods=10),
        ...                                thresholds=ThresholdSettings(min_scores=20, q=0.01))
        >>> a, b = detector(), detector()
        >>> for bar in bars[:200]:
        ...     _ = a.step(["A"], bar)
        >>> _ = b.step(["Z"], bars[0])  # another symbol first: "A" gets another row in b
        >>> b.import_state("A", a.export_state("A"))
        >>> later = [(a.step(["A"], bar), b.step(["A"], bar)) for bar in bars[200:]]
        >>> all(np.array_equal(x.score, y.score) and np.array_equal(x.threshold, y.threshold) for x, y in later)
        True
        """
        row = self.bank.index.get(symbol)
        if row is None:
            raise KeyError(f"no state for symbol {symbol!r}")
        self._grow(np.array([row]))
        arrays = {"prev": self._prev[row], "windows": self._windows[row]}
        arrays.update({f"band.{k}": v for k, v in self.bank.export_row(row).items()})
        arrays.update({f"threshold.{k}": v for k, v in self.thresholds.export_row(row).items()})
        if self._season is not None:
            arrays.update({f"season.{k}": v for k, v in self._season.export_row(row).items()})
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @property
    def model_version(self) -> tuple[int, int, int]:
        """Changes whenever the state `export_model_state` saves does: ``(fits, windows kept,
        windows since the last fit)``; ``(0, 0, 0)`` before it has learned any window."""
        return self.fits, len(self._train), self._since

    def export_model_state(self) -> bytes:
        """The state all symbols share, for a `shared_model`: the windows of the last fit and
        those learned since (no pickle: `import_model_state` refits on the same windows, which
        gives the same forest, its seed being fixed).

        Examples
        --------
        >>> from tickwise.anomaly.iforest import IsolationForestModel
        >>> from tickwise.anomaly.base import Schedule
        >>> rng = np.random.default_rng(3)
        >>> bars = [{"open": np.full(3, 100.0), "high": 101 + rng.random(3), "low": np.full(3, 99.0),
        ...          "close": 100 + rng.normal(0, 1, 3), "volume": rng.lognormal(7, 0.3, 3)} for _ in range(200)]
        >>> def detector():
        ...     return MultiSymbolDetector(IsolationForestModel(n_estimators=20), bands=Bands(window=20, min_periods=10),
        ...                                schedule=Schedule(min_train=100, refit_every=150, max_train=300),
        ...                                thresholds=ThresholdSettings(min_scores=20, q=0.01))
        >>> a, b = detector(), detector()
        >>> a.warm((["A", "B", "C"], bar, None) for bar in bars[:150]), a.fits
        (450, 3)
        >>> b.import_model_state(a.export_model_state())
        >>> for s in ("A", "B", "C"):
        ...     b.import_state(s, a.export_state(s))
        >>> later = [(a.step(["A", "B", "C"], bar), b.step(["A", "B", "C"], bar)) for bar in bars[150:]]
        >>> a.fits, b.fits, all(np.array_equal(x.score, y.score) for x, y in later)  # refitted once since, alike
        (4, 4, True)
        """
        if not self.shared_model:
            raise ValueError(f"the {self.name} detector has no model state shared by its symbols")
        empty = np.empty((0, *self._windows.shape[1:]))
        train = list(self._train)
        since = train[max(len(train) - self._since, 0):] if self._since else []
        buf = io.BytesIO()
        np.savez(buf, fit=self._fit_data if self._fit_data is not None else empty,
                 since=np.stack(since) if since else empty, fits=np.array([self.fits]))
        return buf.getvalue()

    def import_model_state(self, data: bytes) -> None:
        """Set the shared state from `export_model_state` (refitting the model on its windows)."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            fit, since, fits = z["fit"], z["since"], int(z["fits"][0])
        self._train.clear()
        self._train.extend(fit)
        if fit.shape[0]:
            self.model.fit(fit)
            self._fitted, self._fit_data = True, fit
        self._train.extend(since)
        self._since, self.fits = since.shape[0], fits

    def import_state(self, symbol: str, data: bytes) -> None:
        """Set one symbol's state from `export_state` of a detector with the same `config`."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        row = int(self.bank.rows_for([symbol])[0])
        self._grow(np.array([row]))
        self._prev[row], self._windows[row] = arrays["prev"], arrays["windows"]
        self.bank.import_row(row, _part(arrays, "band."))
        self.thresholds.import_row(row, _part(arrays, "threshold."))
        if self._season is not None:
            self._season.import_row(row, _part(arrays, "season."))

    def _usable(self, context: FloatArray | None = None) -> bool:
        """Whether the model can score now (a model that is fitted in the background may not
        be yet; the classifier needs its market-context ensemble only for bars with a context)."""
        if not self._fitted:
            return False
        ready_for = getattr(self.model, "ready_for", None)
        return bool(ready_for(context)) if ready_for is not None else getattr(self.model, "ready", True)

    def _prepare(self, symbols: Sequence[str], fields: Mapping[str, FloatArray], ts: FloatArray | None) -> _Prepared:
        """Features, time-of-day profile, band statistics and windows of one step (nothing learned)."""
        rows = self.bank.rows_for(list(symbols))
        if np.unique(rows).size != rows.size:
            raise ValueError(f"symbols in one step must be distinct, was {list(symbols)}")
        self._grow(rows)
        raw, state = self.spec.rows(fields, self._prev[rows])
        feats, slots = raw, None
        if self._season is not None:
            if ts is None:
                raise ValueError("a detector with a time-of-day profile needs each bar's ts")
            slots = self.seasonality.slots(np.asarray(ts, dtype=np.int64))  # type: ignore[union-attr]
            feats = self._season.adjust(rows, slots, raw)
        out = self.bank.stats(rows, feats)
        last = shown(self.spec.names, raw, feats) if reads_raw(self.model) else out.z
        windows = np.concatenate([self._windows[rows, 1:], last[:, None, :]], axis=1)
        return _Prepared(rows, raw, feats, slots, state, out.ready, out.center, out.z, windows)

    def _context(self, p: _Prepared, ts: FloatArray | None) -> FloatArray | None:
        """The step's market context, for a model that reads it: the other symbols' bars of the
        same ``ts`` (all of the step's without ``ts``) are each bar's peers, those of this step
        and those of earlier steps (a bar time's bars may come in several steps: a symbol's bar
        then has the peers that came before it, and the ones after it have it). Remembers this
        step's ready bars for the steps after it (the newest `PEER_TIMES` bar times)."""
        if not (self.market and uses_context(self.model)):
            return None
        z = p.z
        if ts is None:
            return market_context(z, np.zeros(p.rows.size, dtype=np.int64), p.ready)
        ts = np.asarray(ts, dtype=np.int64)
        times = np.unique(ts).tolist()
        earlier = []  # (bar time, rows, z) of earlier steps' bars of this step's bar times, not of its symbols
        for t in times:
            if t in self._peers:
                rows, zs = self._peers[t]
                other = ~np.isin(rows, p.rows)
                earlier.append((t, rows[other], zs[other]))
        if any(e[1].size for e in earlier):
            ctx = market_context(np.vstack([z, *(e[2] for e in earlier)]),
                                 np.concatenate([ts, *(np.full(e[1].size, e[0], dtype=np.int64) for e in earlier)]),
                                 np.concatenate([p.ready, np.ones(sum(e[1].size for e in earlier), dtype=bool)])
                                 )[:p.rows.size]
        else:
            ctx = market_context(z, ts, p.ready)
        kept = {t: (rows, zs) for t, rows, zs in earlier}
        for t in times:
            mine = p.ready & (ts == t)
            rows, zs = kept.get(t, (np.empty(0, dtype=p.rows.dtype), np.empty((0, z.shape[1]))))
            self._peers[t] = (np.concatenate([rows, p.rows[mine]]), np.vstack([zs, z[mine]]))
        for t in sorted(self._peers)[:-PEER_TIMES]:
            del self._peers[t]
        return ctx

    def _score(self, windows: FloatArray, context: FloatArray | None) -> FloatArray:
        if context is None:
            return self.model.score_windows(windows)
        return self.model.score_windows(windows, context)  # type: ignore[call-arg]

    def _learn(self, p: _Prepared) -> bool:
        """Learn one prepared step; return whether the model's fit is due now."""
        if self._season is not None:
            self._season.learn(p.rows, p.slots, p.raw)  # type: ignore[arg-type]
        self.bank.learn(p.rows, p.feats)
        self._prev[p.rows] = p.state
        self._windows[p.rows] = p.windows
        if self.model.needs_fit and np.any(p.ready):
            self._train.extend(p.windows[p.ready])
            self._since += int(p.ready.sum())
            return self.schedule.due(fitted=self._fitted, n_train=len(self._train), since_fit=self._since)
        return False

    def _fit(self) -> None:
        self._fit_data = np.stack(self._train)
        self.model.fit(self._fit_data)
        self._fitted = True
        self._since = 0
        self.fits += 1


def _part(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


@functools.cache
def _state_code_digest() -> str:
    """A digest of the anomaly package's code (features, bands, thresholds, the models' scores:
    all of it shapes a saved state), read once per process: after an upgrade that changes any of
    it, saved states are not loaded and series warm up from stored bars once."""
    from pathlib import Path

    from tickwise.anomaly.modelcache import fingerprint

    return fingerprint([p.read_bytes() for p in sorted(Path(__file__).parent.glob("*.py"))])


@dataclass(slots=True)
class _Prepared:
    """One step's arrays before learning (rows of the symbols in the step's order)."""

    rows: np.ndarray
    raw: FloatArray
    feats: FloatArray
    slots: np.ndarray | None
    state: FloatArray
    ready: np.ndarray
    center: FloatArray
    z: FloatArray
    windows: FloatArray
