"""The classifier detector: gradient-boosted trees taught what injected anomalies look like.

The band detectors rank bars by how far each feature lies from its own past; they cannot
learn that a range 6 sigma wide with a close 3 sigma down and volume 3x, followed by a bar
that gives it all back, is a flash crash, while the same range on 10x volume that stays
down is news. This model learns such combinations from examples instead of hand weights:

- **Training set.** Real bars with labelled anomalies injected into them
  (`tickwise.anomaly.inject`: price spikes, level shifts, volume bursts, flash crashes,
  frozen prices; sizes drawn from ``magnitude`` robust sigma, several injection seeds per
  series). By default the bars are the four public-domain Quandl WIKI daily stocks shipped
  in ``tickwise/anomaly/data`` (AAPL, GOOG, IBM, MSFT, 2000-2013): the same stocks the band
  detectors were tuned on, so every other series is held out.
- **Inputs.** A window of three bars (the two before and the current one) of band z-scores
  of the bar features and the bar's shape (`FeatureSpec.bars(shapes=True)`: return, range,
  volume, gap, swing, where the close lies in the range, body, lower shadow, open-to-close
  return, log volume), plus the ``divergence`` score of the last two bars. The shape is what
  tells a level shift (a gap on an ordinary bar) from news (a gap with a wide, heavy bar) and
  shows a flash crash's long lower shadow. Nothing after the current bar: score before
  learn holds as for every model.
- **Market context.** Where other symbols have bars of the same time, a second ensemble
  (``Training.market``), trained the same way with every training copy of the four stocks one
  market, also reads the market context (`tickwise.anomaly.market`): the other symbols' median
  band z-scores and the bar's own minus them, so a market-wide day (an expiry Friday's volume,
  a sell-off) is told from a fault of one symbol. Bars without peers are scored by the first
  ensemble, trained without those inputs, exactly as before (one model for both cases lost
  accuracy alone: docs/anomaly-evaluation.md).
- **Labels.** The bars of an event and the bar after it (the evaluation's tolerance): a
  two-bar pattern may be recognised only on its second bar.
- **Model.** An ensemble of ``Training.members`` (4) scikit-learn
  ``HistGradientBoostingClassifier`` models, each trained on other injection seeds. Its
  score is the members' mean log-odds that the window holds an injected anomaly (averaging
  steadies what a single fit learns from its particular injections); explanations are the
  members' mean path attributions of that log-odds (SHAP's TreeExplainer with
  ``approximate=True``, Saabas' method), folded onto the five bar features (the shape onto
  return and swing, log volume onto volume), so the words are those of every other
  detector. Like exact SHAP values they add up to the score; unlike them they cost one
  root-to-leaf path per tree (about 90 times less), and on detected injected events they
  named the perturbed feature more often (92 % against 87 %: exact values credit a price
  spike's widened high-low swing as much as its return; `benchmarks/eval_explanations.py`).
  Scores are walked through the members' trees in one compiled loop (`tickwise.anomaly.trees`:
  the same floats as ``predict_proba``, without its per-tree calls).

It learns the *shapes the injector makes*. Its held-out accuracy on injected events is
therefore an estimate for anomalies of those shapes; the README also reports it on a kind
left out of training. Each member is fitted once per machine (about 10 s on 2 cores) and kept in the
on-disk model cache (`tickwise.anomaly.modelcache`); within a process the loaded ensemble is
shared, so clones (one per symbol group, per stream) share one fit.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from tickwise.anomaly import DIVERGENCE, make_bands, market
from tickwise.anomaly.bands import BandBank
from tickwise.anomaly.detector import windows_of
from tickwise.anomaly.features import BAR_FEATURES, FeatureSpec
from tickwise.anomaly.inject import KINDS, inject
from tickwise.anomaly.modelcache import ENV, cache_dir, cached, fingerprint, stored, unwritable
from tickwise.anomaly.transient import TransientModel
from tickwise.anomaly.trees import FlatTrees
from tickwise.exceptions import ConfigError, InputError

log = logging.getLogger(__name__)

FloatArray = np.ndarray
CLIP = 50.0
#: Probabilities are clipped to [EPS, 1 - EPS] before the log-odds.
EPS = 1e-9
#: Models in the default ensemble (each trained on other injection seeds; log-odds averaged).
MEMBERS = 4
#: What the classifier reads of each bar.
SPEC = FeatureSpec.bars(shapes=True)
_BASE = len(BAR_FEATURES)
#: Where each shape feature's explanation credit goes (index into `BAR_FEATURES`):
#: close location, body and open-to-close return onto return; lower shadow onto swing;
#: log volume onto volume.
_FOLD = {"close_location": 0, "body": 0, "lower_shadow": 4, "intrabar": 0, "log_volume": 2}


@dataclass(frozen=True, slots=True)
class Training:
    """How the classifier's training set is made and the trees are grown.

    Examples
    --------
    >>> Training().magnitude
    (4.0, 16.0)
    """

    kinds: tuple[str, ...] = KINDS
    magnitude: tuple[float, float] = (4.0, 16.0)
    #: injected events per bar: 0.01-0.02 is a plateau of leave-one-stock-out CV, 0.03 scored lower
    rate: float = 0.015
    copies: int = 16
    lookback: int = 3
    warmup: int = 100
    max_iter: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 31
    exclude: tuple[str, ...] = ()
    #: trained with the market context (`tickwise.anomaly.market`): copy k of every series is one market
    market: bool = False
    seed: int = 0
    members: int = MEMBERS

    def member_settings(self) -> tuple[Training, ...]:
        """One single-model setting per ensemble member: member k trains with seed
        ``seed + 100 k`` (other injection seeds, other trees).

        Examples
        --------
        >>> [t.seed for t in Training(seed=1, members=3).member_settings()]
        [1, 101, 201]
        """
        return tuple(replace(self, seed=self.seed + 100 * k, members=1) for k in range(self.members))


def _shipped_bars():  # -> importlib.resources.abc.Traversable
    return resources.files("tickwise.anomaly") / "data" / "bokeh_daily.parquet"


def training_bars() -> list[pl.DataFrame]:
    """The shipped training series: one frame of daily bars per symbol, oldest first."""
    with resources.as_file(_shipped_bars()) as p:
        bars = pl.read_parquet(p)
    return [part.sort("ts") for _, part in bars.group_by(["symbol"], maintain_order=True)]


@functools.cache
def training_symbols() -> tuple[str, ...]:
    """The symbols of the shipped training bars.

    Examples
    --------
    >>> training_symbols()
    ('AAPL', 'GOOG', 'IBM', 'MSFT')
    """
    return tuple(sorted(str(s["symbol"][0]) for s in training_bars()))


def _inputs(windows: FloatArray, div: TransientModel, context: FloatArray | None = None) -> FloatArray:
    flat = np.clip(np.nan_to_num(windows.reshape(windows.shape[0], -1)), -CLIP, CLIP)
    pair = windows[:, -2:, :_BASE]
    cols = [flat, np.clip(np.nan_to_num(div.score_windows(pair)), 0.0, CLIP)]
    return np.column_stack(cols if context is None else [*cols, context])


def bar_windows(copies: Sequence[pl.DataFrame], lookback: int) -> list[FloatArray]:
    """The classifier's windows of equally long series, as its `Detector` builds them
    (60-bar bands), all series stepped together through one `BandBank`.

    Examples
    --------
    >>> from tickwise.anomaly import make_detector
    >>> bars = training_bars()[0].head(300)
    >>> w = bar_windows([bars, bars], 3)
    >>> bool(np.allclose(w[1], make_detector("classifier").score(bars).windows))
    True
    """
    raw = np.stack([SPEC.batch(SPEC.fields_from_frame(b)) for b in copies])
    bands = make_bands("classifier")
    bank = BandBank(raw.shape[2], replace(bands, links=SPEC.scale_links), capacity=len(copies))
    rows = bank.rows_for([str(j) for j in range(len(copies))])
    z = np.empty_like(raw)
    for t in range(raw.shape[1]):
        z[:, t] = bank.stats(rows, raw[:, t]).z
        bank.learn(rows, raw[:, t])
    return [windows_of(zj, lookback) for zj in z]


def training_set(series: Sequence[pl.DataFrame], training: Training) -> tuple[FloatArray, np.ndarray]:
    """Inputs and labels: each series with anomalies injected ``copies`` times (other seeds)."""
    div = TransientModel(name="divergence", **DIVERGENCE)
    used = [(i, s) for i, s in enumerate(series) if s.height >= training.warmup + 200]
    # per series, its copies: (bars, events) and windows, each copy with its own injections
    copies = []
    for i, s in used:
        injected = [inject(s, kinds=training.kinds, rate=training.rate, start=training.warmup,
                           magnitude=training.magnitude, seed=training.seed * 1000 + 37 * i + c)
                    for c in range(training.copies)]
        copies.append(list(zip(injected, bar_windows([b for b, _ in injected], training.lookback), strict=True)))
    # copy c of every series is one market: with ``market``, their bars of the same date are each other's peers
    ctx: list[list[FloatArray | None]] = [[None] * training.copies for _ in copies]
    if training.market:
        for c in range(training.copies):
            for i, context in enumerate(market.contexts([
                    (w[:, -1], np.arange(w.shape[0]) >= training.warmup, b["ts"].dt.epoch("ns").to_numpy())
                    for (b, _), w in (x[c] for x in copies)])):
                ctx[i][c] = context
    xs, ys = [], []
    for series_copies, contexts in zip(copies, ctx, strict=True):
        for ((bars, events), windows), context in zip(series_copies, contexts, strict=True):
            y = np.zeros(bars.height, dtype=np.int8)
            for e in events:
                y[e.start:min(e.end + 1, bars.height - 1) + 1] = 1
            xs.append(_inputs(windows, div, context)[training.warmup:])
            ys.append(y[training.warmup:])
    if not xs:
        raise InputError(f"classifier training needs series of at least {training.warmup + 200} bars, got none")
    return np.vstack(xs), np.concatenate(ys)


class Ensemble:
    """Boosted-tree members whose log-odds are averaged (their attributions too, so an
    explanation still adds up to the score)."""

    def __init__(self, members: Sequence[object]) -> None:
        self.members = list(members)
        self._explainers: list[object] | None = None
        self._flat: list[FlatTrees] | None = None

    def log_odds(self, x: FloatArray) -> FloatArray:
        """The members' mean log-odds per row of ``x``, each member's probability clipped to
        [EPS, 1 - EPS] first; the trees walked by `tickwise.anomaly.trees` (the members'
        ``predict_proba``, bit for bit, at a fraction of the cost)."""
        if self._flat is None:
            self._flat = [FlatTrees(m) for m in self.members]
        out = np.zeros(x.shape[0])
        for m in self._flat:
            p = np.clip(m.proba(x), EPS, 1.0 - EPS)
            out += np.log(p) - np.log1p(-p)
        return out / len(self.members)

    def contributions(self, x: FloatArray, *, exact: bool = False) -> FloatArray:
        """Each input's share of the log-odds, averaged over the members: path attributions
        (Saabas; SHAP's TreeExplainer with ``approximate=True``) by default, exact SHAP
        values with ``exact``. Either adds up, with the explainers' mean expected value, to
        `log_odds`."""
        if self._explainers is None:
            import shap

            self._explainers = [shap.TreeExplainer(m) for m in self.members]
        total = np.zeros(x.shape)
        for e in self._explainers:
            values = np.asarray(e.shap_values(x, approximate=not exact))  # type: ignore[attr-defined]
            total += values[..., -1] if values.ndim == 3 else values  # some shap versions: one array per class
        return total / len(self._explainers)


#: Ensembles and single fitted members, per process (a one-member ensemble's setting equals its member's).
_CACHE: dict[Training, Ensemble] = {}
_FITS: dict[Training, object] = {}
_LOCK = threading.Lock()  # guards _CACHE and _FITS; never held while fitting or loading
#: Held while an ensemble fits members, so a process fits one ensemble at a time (as a rule in
#: the order asked: the first one asked for is ready soonest, instead of both late); loading
#: stored members does not take it, so a stored ensemble never waits behind another's fit.
_FIT_LOCK = threading.Lock()
#: Fits started by `trained_soon`, one per setting and process.
_BACKGROUND: dict[Training, threading.Thread] = {}
_BACKGROUND_LOCK = threading.Lock()


def _fit(training: Training) -> object:
    from sklearn.ensemble import HistGradientBoostingClassifier

    series = [s for s in training_bars() if str(s["symbol"][0]) not in training.exclude]
    x, y = training_set(series, training)
    return HistGradientBoostingClassifier(max_iter=training.max_iter, learning_rate=training.learning_rate,
                                          max_leaf_nodes=training.max_leaf_nodes,
                                          random_state=training.seed).fit(x, y)


@functools.cache
def _sources_digest() -> str:
    """A digest of the shipped bars and of the code that builds the training set, read once
    per process (they do not change under a running process)."""
    from tickwise.anomaly import bands, detector, features, inject, transient

    files = [Path(m.__file__) for m in (bands, detector, features, inject, market, transient)] + [Path(__file__)]
    return fingerprint([_shipped_bars().read_bytes(), *(f.read_bytes() for f in files)])


def _cache_key(training: Training) -> str:
    """What a fit depends on: its settings, the shipped bars and the code that builds its inputs."""
    return fingerprint([repr(training), _sources_digest()])


def to_fit(training: Training) -> int:
    """How many of ``training``'s members `trained` would have to fit (in neither this
    process nor the on-disk cache)."""
    return sum(t not in _FITS and not stored("classifier", _cache_key(t)) for t in training.member_settings())


def first_use_note(training: Training, *, market: bool = False) -> str | None:
    """What to tell a user before `trained` fits members (with ``market``, those of the
    ensemble for bars with a market context too), or None when all are stored."""
    n = to_fit(training) + (to_fit(replace(training, market=True)) if market else 0)
    if not n:
        return None
    where = cache_dir()
    kept = (f"kept in {where} for next time; `tickwise prepare` fits them ahead" if where is not None
            else f"not kept: {ENV}=off")
    return (f"training the classifier: {n} model(s) on the shipped bars, about 10 s each "
            f"(once per machine; {kept})")


def trained(training: Training) -> Ensemble:
    """The fitted classifier for ``training`` (shipped bars): each member fitted once per
    machine (`tickwise.anomaly.modelcache`) and loaded once per process."""
    with _LOCK:
        model = _CACHE.get(training)
    if model is not None:
        return model
    # all stored: loaded at once, even while another ensemble is fitting
    with _FIT_LOCK if to_fit(training) else contextlib.nullcontext():
        members = [_member(t) for t in training.member_settings()]
    with _LOCK:
        return _CACHE.setdefault(training, Ensemble(members))


def _member(t: Training, *, store: bool = False) -> object:
    """One member: fitted in this process already, else loaded from the model cache, else
    fitted. With ``store`` a member this process has (fitted with the cache off, say) is
    written to the cache too."""
    with _LOCK:
        fit = _FITS.get(t)
    if fit is None or store:
        fit = cached("classifier", _cache_key(t), functools.partial(_fit, t) if fit is None else lambda f=fit: f)
        with _LOCK:
            fit = _FITS.setdefault(t, fit)
    return fit


def prepare(trainings: Sequence[Training], report: Callable[[str], None]) -> int:
    """Fit every member of ``trainings`` that the model cache does not hold yet and store it
    there, one at a time, telling ``report`` of each; returns how many were fitted. Run once
    on a machine before the live stage (`tickwise prepare`): it then scores with the
    classifier from its first bar instead of after a background fit of a minute or more.

    Raises `ConfigError` when the cache is off or cannot be written (checked before fitting).
    """
    folder = cache_dir()
    if folder is None:
        raise ConfigError(f"{ENV}=off: a fitted model would not be kept; unset it or name a folder")
    problem = unwritable(folder)
    if problem is not None:
        raise ConfigError(f"model cache {folder} ({ENV}) cannot be written: {problem}")
    missing = sum(to_fit(t) for t in trainings)
    if missing:
        report(f"classifier: fitting {missing} of {sum(t.members for t in trainings)} models on the shipped "
               "bars, about 10 s each (once per machine)")
    fitted = 0
    for training in trainings:
        which = "bars with a market context" if training.market else "bars alone"
        members = training.member_settings()
        for k, t in enumerate(members, 1):
            key = _cache_key(t)
            if stored("classifier", key):
                continue
            start = time.perf_counter()
            with _FIT_LOCK:  # another process fitting it: `cached` waits for that one and loads it
                _member(t, store=True)
            if not stored("classifier", key):
                raise ConfigError(f"model cache {folder} ({ENV}): a fitted model could not be stored there")
            fitted += 1
            report(f"classifier ({which}): model {k}/{len(members)} ready in {time.perf_counter() - start:.1f} s")
    return fitted


def _fit_quietly(training: Training) -> None:
    try:
        trained(training)
    except Exception:  # a background thread has no caller to raise to: say it, and stay not ready
        log.exception("fitting the classifier failed; the classifier detector scores nothing in this process")
    else:
        log.info("the classifier is fitted; it scores from the next bar on")


def trained_soon(training: Training) -> Ensemble | None:
    """The fitted classifier if it can be had without fitting (fitted in this process or
    stored in the model cache: loading takes well under a second), else None, after starting
    the fit in a background thread (once per setting and process) so that a caller that must
    not wait, such as the live stage, goes on and asks again later.
    """
    model = _CACHE.get(training)
    if model is not None:
        return model
    with _BACKGROUND_LOCK:
        thread = _BACKGROUND.get(training)
        if thread is None and not to_fit(training):
            return trained(training)
        if thread is None:
            thread = _BACKGROUND[training] = threading.Thread(
                target=_fit_quietly, args=(training,), name="classifier-fit", daemon=True)
            thread.start()
    return None if thread.is_alive() else _CACHE.get(training)


class ClassifierModel:
    """Log-odds, from boosted trees, that a window of bars holds an injected anomaly.

    Examples
    --------
    >>> m = ClassifierModel()
    >>> calm, burst = np.zeros((1, 3, 10)), np.zeros((1, 3, 10))
    >>> burst[0, -1, 2] = burst[0, -1, 9] = 9.0
    >>> s = m.score_windows(np.vstack([calm, burst])); bool(s[1] > s[0] + 5)
    True
    >>> m.names[int(np.argmax(m.attribute(burst)[0]))]
    'volume'
    """

    name = "classifier"
    needs_fit = False
    spec = SPEC
    #: reads the market context (`tickwise.anomaly.market`) where other symbols trade at the same time
    uses_context = True

    def __init__(self, *, names: Sequence[str] = SPEC.names, training: Training | None = None,
                 seed: int = 0) -> None:
        if tuple(names)[:_BASE] != BAR_FEATURES:
            raise InputError("the classifier detector needs OHLCV bars (open, high, low, close, volume); "
                             f"got features {', '.join(names)}: use zscore, ewma or transient for value series")
        self.names = SPEC.names
        self.training = replace(training or Training(seed=seed), market=False)
        #: the ensemble for bars with a market context: the same training, every copy one market
        #: (None when the training leaves a single stock: it has no market to learn from)
        self.market_training: Training | None = replace(self.training, market=True) \
            if len(set(training_symbols()) - set(self.training.exclude)) >= 2 else None
        self.lookback = self.training.lookback
        self._div = TransientModel(name="divergence", **DIVERGENCE)
        self._clf: Ensemble | None = None
        self._market: Ensemble | None = None

    @property
    def identity(self) -> str:
        """What its scores depend on (training settings, shipped bars, the code): a detector
        state saved with another model's scores is not loaded (`MultiSymbolDetector.config`)."""
        return fingerprint([_cache_key(self.training), "" if self.market_training is None
                            else _cache_key(self.market_training)])

    @property
    def classifier(self) -> Ensemble:
        """The fitted ensemble for bars scored alone (fitted or loaded now, waiting for it, if need be)."""
        if self._clf is None:
            self._clf = trained(self.training)
        return self._clf

    @property
    def market_classifier(self) -> Ensemble:
        """The fitted ensemble for bars with a market context (fitted or loaded now, if need be)."""
        if self._market is None:
            if self.market_training is None:
                raise InputError("this classifier was trained on one stock: it has no market-context ensemble")
            self._market = trained(self.market_training)
        return self._market

    @property
    def ready(self) -> bool:
        """Whether scoring bars alone can start without waiting for a fit (`ready_for`)."""
        return self.ready_for(None)

    def ready_for(self, context: FloatArray | None) -> bool:
        """Whether windows with this market context (None: alone) can be scored without
        waiting for a fit. When they cannot, the fit is started in a background thread
        (`trained_soon`): the live stage leaves this detector's scores empty until it is
        done, instead of holding bars back."""
        if self._clf is None:
            self._clf = trained_soon(self.training)
        market = context is not None and bool(self._split(context, context.shape[0]).any())
        if market and self._market is None:
            self._market = trained_soon(self.market_training)  # type: ignore[arg-type]
        return self._clf is not None and (not market or self._market is not None)

    def _split(self, context: FloatArray | None, n: int) -> np.ndarray:
        """Which of ``n`` windows have a market context (and go to `market_classifier`)."""
        if context is None or self.market_training is None:
            return np.zeros(n, dtype=bool)
        return np.isfinite(context).all(axis=1)

    def fit(self, windows: FloatArray) -> None:
        """Nothing to learn from the stream: the trees were trained on injected anomalies."""

    def score_windows(self, windows: FloatArray, context: FloatArray | None = None) -> FloatArray:
        """Log-odds per window; ``context`` is each window's market context (`tickwise.anomaly.market`),
        None (or NaN rows) where a bar is scored alone."""
        peers = self._split(context, windows.shape[0])
        out = np.empty(windows.shape[0])
        if not peers.all():
            out[~peers] = self.classifier.log_odds(_inputs(windows[~peers], self._div))
        if peers.any():
            out[peers] = self.market_classifier.log_odds(_inputs(windows[peers], self._div, context[peers]))  # type: ignore[index]
        return out

    def attribute(self, windows: FloatArray, context: FloatArray | None = None, *, exact: bool = False) -> FloatArray:
        """Log-odds contributions per feature (`Ensemble.contributions`; all bars of the window summed; the
        divergence input shared out in proportion to its own terms; the shape folded onto the
        bar features as `_FOLD` says; each market-context input onto the bar feature it is of),
        floored at 0. Shape features get 0. ``exact``: from exact SHAP values instead of path
        attributions."""
        peers = self._split(context, windows.shape[0])
        f = len(self.names)
        at = self.lookback * f + 1
        values = np.zeros((windows.shape[0], at + market.WIDTH))
        if not peers.all():
            values[~peers, :at] = self.classifier.contributions(_inputs(windows[~peers], self._div), exact=exact)
        if peers.any():
            values[peers] = self.market_classifier.contributions(
                _inputs(windows[peers], self._div, context[peers]), exact=exact)  # type: ignore[index]
        per = values[:, :self.lookback * f].reshape(-1, self.lookback, f).sum(axis=1)
        terms = self._div.attribute(windows[:, -2:, :_BASE])
        share = terms / np.maximum(terms.sum(axis=1, keepdims=True), 1e-12)
        out = np.zeros_like(per)
        own_and_market = values[:, at:at + _BASE] + values[:, at + _BASE:at + 2 * _BASE]
        out[:, :_BASE] = per[:, :_BASE] + values[:, [self.lookback * f]] * share + own_and_market
        for j, name in enumerate(self.names[_BASE:], start=_BASE):
            out[:, _FOLD[name]] += per[:, j]
        return np.maximum(out, 0.0)

    def reason(self, window: FloatArray) -> str:
        """The divergence model's words for a two-bar pattern, if any."""
        return self._div.reason(window[-2:, :_BASE])

    def clone(self) -> ClassifierModel:
        m = ClassifierModel(training=self.training)
        m._clf, m._market = self._clf, self._market
        return m
