from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tickwise.anomaly import (
    Bands,
    Schedule,
    ThresholdBank,
    ThresholdSettings,
    make_detector,
    make_model,
    tail_thresholds,
    threshold_settings,
)
from tickwise.anomaly.bands import BandBank, band_zscores
from tickwise.anomaly.features import FeatureSpec
from tickwise.anomaly.inject import KINDS, inject
from tickwise.anomaly.learned import Training
from tickwise.anomaly.multi import MultiSymbolDetector

DETECTORS = ("zscore", "ewma", "transient", "divergence", "classifier", "iforest", "autoencoder")
SCHEDULE = Schedule(min_train=400, refit_every=1000, max_train=5000)


#: the classifier is trained without the bokeh GOOG bars, so scoring GOOG here is out of sample
CLASSIFIER_TRAINING = Training(exclude=("GOOG",))


def _detector(name: str, **kw):
    options = {"epochs": 15} if name == "autoencoder" else {}
    if name == "classifier":
        options = {"training": CLASSIFIER_TRAINING}
    return make_detector(name, schedule=kw.pop("schedule", SCHEDULE), **options, **kw)


def _records(bars: pl.DataFrame) -> list[dict[str, float]]:
    return bars.select("open", "high", "low", "close", "volume").to_dicts()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", DETECTORS)
def test_detector_injected_kind_on_real_data_ranks_in_top_percent(goog_bars, name, kind):
    bars, events = inject(goog_bars, kinds=[kind], rate=0.01, start=800, seed=3, magnitude=(10.0, 14.0))
    score = _detector(name).score(bars).score
    near = {i for e in events for i in range(e.start, e.end + 2)}
    normal = np.array([i for i in range(800, bars.height) if i not in near])
    p99 = np.nanpercentile(score[normal], 99)
    found = [np.nanmax(score[e.start:e.end + 2]) > p99 for e in events]
    assert len(events) >= 10
    assert np.mean(found) >= 0.6, f"{name} found {np.mean(found):.2f} of {kind} events above the 99th percentile"


@pytest.mark.parametrize("name", ["zscore", "ewma", "transient", "divergence", "autoencoder"])
def test_detector_adaptive_threshold_flags_frozen_and_spikes(goog_bars, name):
    bars, events = inject(goog_bars, kinds=["frozen_price", "price_spike"], rate=0.01, start=800, seed=5,
                          magnitude=(10.0, 14.0))
    score = _detector(name).score(bars).score
    flags = score > tail_thresholds(score, ThresholdSettings(q=1e-3))
    hit = [flags[e.start:e.end + 2].any() for e in events]
    assert np.mean(hit) >= 0.5


@pytest.mark.parametrize("name", DETECTORS)
def test_explanation_volume_burst_top_feature_is_volume(goog_bars, name):
    bars, events = inject(goog_bars, kinds=["volume_burst"], rate=0.01, start=800, seed=11, magnitude=(12.0, 16.0))
    det = _detector(name)
    scores = det.score(bars)
    tops = [det.explain(scores, e.start) for e in events]
    share = np.mean([t.top_feature == "volume" for t in tops])
    assert share >= 0.8, [t.text for t in tops]
    volume_texts = [t.text for t in tops if t.top_feature == "volume"]
    assert all("x its" in t for t in volume_texts)


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_streaming_equals_batch(goog_bars, name):
    bars = goog_bars.head(700)
    schedule = Schedule(min_train=200, refit_every=150, max_train=400)
    batch = _detector(name, schedule=schedule).score(bars).score
    det = _detector(name, schedule=schedule)
    stream = []
    for rec in _records(bars):
        stream.append(det.score_one(rec))
        det.learn_one(rec)
    stream = np.array(stream)
    assert np.array_equal(np.isnan(stream), np.isnan(batch))
    assert np.isfinite(batch).sum() > 300
    np.testing.assert_allclose(stream, batch, rtol=1e-6, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_perturbed_future_leaves_past_scores_unchanged(goog_bars, name):
    bars = goog_bars.head(900)
    cut = 650
    rng = np.random.default_rng(0)
    order = np.r_[np.arange(cut), cut + rng.permutation(bars.height - cut)]
    future = bars[order.tolist()].with_columns(
        (pl.col("volume") * pl.Series(np.r_[np.ones(cut), rng.uniform(0.1, 10, bars.height - cut)])).alias("volume"))
    schedule = Schedule(min_train=200, refit_every=200, max_train=1000)
    a = _detector(name, schedule=schedule).score(bars).score
    b = _detector(name, schedule=schedule).score(future).score
    np.testing.assert_array_equal(a[:cut], b[:cut])
    assert not np.allclose(np.nan_to_num(a[cut:]), np.nan_to_num(b[cut:]))


def test_bands_rolling_batch_matches_numpy_reference(goog_bars):
    spec = FeatureSpec.bars()
    raw = spec.batch(spec.fields_from_frame(goog_bars))
    bands = Bands(window=30, min_periods=10, clip=1e9)  # no winsorising: plain rolling stats
    out = band_zscores(raw, bands)
    t = 500
    win = raw[t - 30:t]
    np.testing.assert_allclose(out.center[t], win.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(out.z[t], (raw[t] - win.mean(axis=0)) / win.std(axis=0), rtol=1e-9)


@pytest.mark.parametrize("method", ["rolling", "ewma"])
def test_band_bank_many_symbols_equals_batch_per_symbol(goog_bars, method):
    spec = FeatureSpec.bars()
    raw = spec.batch(spec.fields_from_frame(goog_bars.head(400)))
    other = raw[::-1].copy()
    bands = Bands(method=method, window=40, min_periods=10, links=spec.scale_links)
    bank = BandBank(len(spec.names), bands, capacity=1)
    rows = bank.rows_for(["A", "B"])
    zs = []
    for t in range(raw.shape[0]):
        x = np.vstack([raw[t], other[t]])
        zs.append(bank.stats(rows, x).z)
        bank.learn(rows, x)
    zs = np.array(zs)
    np.testing.assert_allclose(zs[:, 0], band_zscores(raw, bands).z, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(zs[:, 1], band_zscores(other, bands).z, rtol=1e-7, atol=1e-9)


def test_threshold_bank_equals_batch_and_holds_false_alarm_rate():
    rng = np.random.default_rng(4)
    scores = rng.exponential(1.0, (3, 6000))
    scores[:, ::97] = np.nan
    settings = ThresholdSettings(q=1e-3)
    bank = ThresholdBank(settings, capacity=1)
    rows = np.arange(3)
    got = np.array([bank.update(rows, scores[:, t]) for t in range(scores.shape[1])]).T
    for r in range(3):
        want = tail_thresholds(scores[r], settings, phase=r)
        np.testing.assert_allclose(got[r], want, rtol=1e-12)
    late = scores[:, 1000:]
    rate = np.nanmean(late > got[:, 1000:])
    assert 1e-4 < rate < 4e-3


def test_threshold_burst_of_anomalies_does_not_raise_threshold():
    rng = np.random.default_rng(2)
    s = np.abs(rng.standard_normal(4000))
    s[2000:2100] = 50.0
    th = tail_thresholds(s, ThresholdSettings(q=1e-3))
    assert (s[2000:2100] > th[2000:2100]).all()
    assert th[2200] < 10


@pytest.mark.parametrize("name", ["zscore", "transient", "divergence", "classifier"])
def test_multi_symbol_detector_one_symbol_equals_single_detector(goog_bars, name):
    bars = goog_bars.head(300)
    single = make_detector(name).score(bars).score
    multi = MultiSymbolDetector(make_model(name), bands=Bands())
    got = []
    for t, rec in enumerate(_records(bars)):
        # bars of other times: OTHER is not GOOG's market context (test_market covers that)
        res = multi.step(["GOOG", "OTHER"], {k: np.array([v, v * 1.01]) for k, v in rec.items()},
                         ts=np.array([2 * t, 2 * t + 1]))
        got.append(res.score[0])
    np.testing.assert_allclose(np.array(got), single, rtol=1e-7, equal_nan=True)


def test_value_series_level_spike_is_top_score():
    rng = np.random.default_rng(0)
    v = 50 + rng.normal(0, 2, 600)
    v[450] = 95
    det = make_detector("zscore", spec=FeatureSpec.values(["cpu"]))
    scores = det.score({"cpu": v})
    assert int(np.nanargmax(scores.score)) == 450
    assert det.explain(scores, 450).top_feature == "cpu"


def test_inject_rate_and_spacing_are_as_requested(goog_bars):
    _, events = inject(goog_bars, rate=0.01, start=800, seed=1)
    assert len(events) == round(0.01 * (goog_bars.height - 806))
    starts = np.array([e.start for e in events])
    assert (np.diff(starts) >= 20).all() and starts.min() > 800
    assert {e.kind for e in events} <= set(KINDS)


def test_inject_bad_print_is_a_wick_only_when_named(goog_bars):
    out, events = inject(goog_bars, kinds=["bad_print"], rate=0.01, start=800, seed=3)
    assert events and {e.kind for e in events} == {"bad_print"} and all(e.end == e.start for e in events)
    changed = np.flatnonzero((out["high"] != goog_bars["high"]).to_numpy() | (out["low"] != goog_bars["low"]).to_numpy())
    assert changed.tolist() == [e.start for e in events]
    for col in ("open", "close", "volume"):
        assert out[col].equals(goog_bars[col])
    sig_r = 1.4826 * np.median(np.abs(np.diff(np.log(goog_bars["close"].to_numpy()))
                                      - np.median(np.diff(np.log(goog_bars["close"].to_numpy())))))
    for e in events:
        body_hi = max(goog_bars["open"][e.start], goog_bars["close"][e.start])
        body_lo = min(goog_bars["open"][e.start], goog_bars["close"][e.start])
        reach = max(np.log(out["high"][e.start] / body_hi), np.log(body_lo / out["low"][e.start]))
        assert 6.0 <= reach / sig_r <= 10.0 + 1e-9  # one side reaches out by the drawn magnitude
    # the default kinds are the five: a bad print only when asked for
    _, default = inject(goog_bars, rate=0.01, start=800, seed=3)
    assert "bad_print" not in {e.kind for e in default}
    with pytest.raises(ValueError, match=r"kind must be one of .*bad_print, was 'typo'"):
        inject(goog_bars, kinds=["typo"])


def test_detector_bad_record_raises_clear_error():
    det = make_detector("zscore")
    with pytest.raises(Exception, match="record must have fields"):
        det.score_one({"close": 1.0})
    with pytest.raises(ValueError, match="detector must be one of"):
        make_detector("nope")


def test_threshold_floor_and_xi_cap_bank_equals_batch_and_never_below_floor():
    rng = np.random.default_rng(9)
    scores = np.abs(rng.standard_t(3, (2, 3000)))
    settings = ThresholdSettings(q=1e-3, floor=5.0, xi_max=0.3)
    bank = ThresholdBank(settings, capacity=1)
    rows = np.arange(2)
    got = np.array([bank.update(rows, scores[:, t]) for t in range(scores.shape[1])]).T
    for r in range(2):
        np.testing.assert_allclose(got[r], tail_thresholds(scores[r], settings, phase=r), rtol=1e-12)
    live = got[:, 300:]
    assert (live >= 5.0).all()
    uncapped = tail_thresholds(scores[0], ThresholdSettings(q=1e-3))
    assert np.nanmedian(got[0, 300:]) <= np.nanmedian(uncapped[300:]) + 1e-9


def test_threshold_with_a_ceiling_flags_above_it_before_the_tail_is_known():
    """The classifier's ceiling holds from a series' first score: a new symbol is not silent
    for its first ``min_scores`` bars. Above the ceiling it flags and does not learn; the
    bank and the batch form agree; without a ceiling nothing is flagged before the tail."""
    rng = np.random.default_rng(5)
    scores = rng.normal(0.0, 1.0, (2, 600))
    scores[0, [10, 40]] = 7.0  # two sure windows among the first scores of symbol 0
    settings = ThresholdSettings(q=1e-3, floor=4.5, ceiling=5.0, xi_max=0.1)
    bank = ThresholdBank(settings, capacity=1)
    got = np.array([bank.update(np.arange(2), scores[:, t]) for t in range(600)]).T
    for r in range(2):
        np.testing.assert_allclose(got[r], tail_thresholds(scores[r], settings, phase=r), rtol=1e-12)
    assert (got[:, :settings.min_scores] == 5.0).all()
    flagged = np.flatnonzero(scores[0] > got[0])
    assert flagged.tolist() == [10, 40]
    assert bank.count[0] == 598  # the two flagged scores were not learned
    plain = tail_thresholds(scores[0], ThresholdSettings(q=1e-3))
    assert np.isinf(plain[:200]).all() and not (scores[0, :200] > plain[:200]).any()


def test_iforest_scores_beyond_training_range_rank_by_size(goog_bars):
    det = _detector("iforest").fit(goog_bars.head(1200))
    base = goog_bars.row(1300, named=True)
    rec = {k: base[k] for k in ("open", "high", "low", "close", "volume")}
    det.reset_stream()
    for r in _records(goog_bars.slice(1200, 100)):
        det.learn_one(r)
    scores = [det.score_one({**rec, "volume": rec["volume"] * m}) for m in (1.0, 20.0, 200.0)]
    assert scores[0] < scores[1] < scores[2]


def test_transient_spike_flagged_and_explained_as_reversal(goog_bars):
    bars, events = inject(goog_bars, kinds=["price_spike"], rate=0.01, start=800, seed=13, magnitude=(6.0, 10.0))
    det = _detector("transient")
    scores = det.score(bars)
    s = scores.score
    flags = s > tail_thresholds(s, threshold_settings("transient", q=1e-3))
    hit = [flags[e.start:e.end + 2].any() for e in events]
    assert len(events) >= 10 and np.mean(hit) >= 0.7, np.mean(hit)
    texts = [det.explain(scores, e.start + 1) for e in events]
    assert np.mean([t.top_feature == "return" and "reverses" in t.text for t in texts]) >= 0.7, [t.text for t in texts]


def test_transient_persistent_move_scores_below_same_size_spike(goog_bars):
    base = goog_bars.head(400)
    c = base["close"].to_numpy().copy()
    sig = float(np.std(np.diff(np.log(c[:300]))))
    spike, shift = c.copy(), c.copy()
    spike[300] *= np.exp(10 * sig)
    shift[300:] *= np.exp(10 * sig)
    def scored(close):
        frame = base.with_columns(pl.Series("close", close), pl.Series("open", close),
                                  pl.Series("high", close * 1.01), pl.Series("low", close * 0.99))
        return _detector("transient").score(frame).score
    assert np.nanmax(scored(spike)[300:302]) > 1.5 * np.nanmax(scored(shift)[300:302])


def test_transient_value_series_spike_and_revert_is_top_score():
    rng = np.random.default_rng(0)
    v = 50 + rng.normal(0, 2, 600)
    v[450] = 95
    scores = make_detector("transient", spec=FeatureSpec.values(["cpu"])).score({"cpu": v}).score
    assert int(np.nanargmax(scores)) in (450, 451)


def _with_volume(base: pl.DataFrame, t: int, factor: float) -> pl.DataFrame:
    v = base["volume"].to_numpy().astype(float).copy()
    v[t] *= factor
    return base.with_columns(pl.Series("volume", v))


def test_divergence_move_on_ordinary_volume_outscores_same_move_on_heavy_volume(goog_bars):
    base = goog_bars.head(400)
    shifted, _ = inject(base, kinds=["level_shift"], rate=0.01, start=300, seed=2, magnitude=(8.0, 8.0))
    t = next(i for i in range(301, 400) if shifted["close"][i] != base["close"][i])
    det = _detector("divergence")
    quiet = det.score(shifted)
    news = det.score(_with_volume(shifted, t, 8.0))
    assert quiet.score[t] >= 5.0, quiet.score[t]
    assert quiet.score[t] > 2 * news.score[t], (quiet.score[t], news.score[t])
    text = det.explain(quiet, t).text
    assert "on ordinary volume" in text, text
    # the transient detector discounts both alike: it cannot tell them apart
    tr = _detector("transient")
    assert tr.score(shifted).score[t] < 1.2 * tr.score(_with_volume(shifted, t, 8.0)).score[t]


def test_divergence_volume_burst_without_price_move_outscores_one_with_a_move(goog_bars):
    base = goog_bars.head(400)
    t = 350
    burst = _with_volume(base, t, 12.0)
    c = burst["close"].to_numpy().copy()
    sig = float(np.std(np.diff(np.log(c[:300]))))
    moved = c.copy()
    moved[t:] *= np.exp(6 * sig)
    news = burst.with_columns(pl.Series("close", moved), pl.Series("high", np.maximum(burst["high"].to_numpy(), moved)),
                              pl.Series("low", np.minimum(burst["low"].to_numpy(), moved)))
    det = _detector("divergence")
    quiet = det.score(burst)
    loud = det.score(news)
    assert quiet.score[t] >= 5.0, quiet.score[t]
    expl = det.explain(quiet, t)
    assert expl.top_feature == "volume" and "no price move behind it" in expl.text, expl.text
    i = quiet.names.index("volume")
    vol_term = det.model.attribute(loud.windows[t:t + 1])[0, i]
    assert vol_term < 0.6 * quiet.score[t], (vol_term, quiet.score[t])
    assert "no price move" not in det.model.reason(loud.windows[t])  # a 6-sigma move is behind it


def test_divergence_settings_are_checked():
    from tickwise.anomaly.transient import TransientModel

    with pytest.raises(ValueError, match="volume_confirm"):
        TransientModel(volume_confirm=-1.0)


def test_threshold_ceiling_bank_equals_batch_and_never_above_ceiling():
    rng = np.random.default_rng(4)
    scores = np.abs(rng.standard_t(2, (2, 3000)))
    settings = ThresholdSettings(q=1e-3, floor=1.0, ceiling=4.0, xi_max=0.3)
    bank = ThresholdBank(settings, capacity=1)
    got = np.array([bank.update(np.arange(2), scores[:, t]) for t in range(scores.shape[1])]).T
    for r in range(2):
        np.testing.assert_allclose(got[r], tail_thresholds(scores[r], settings, phase=r), rtol=1e-12)
    live = got[:, 300:]
    assert (live <= 4.0).all() and (live >= 1.0).all()
    # without the ceiling the t(2) tail puts the threshold above 4 most of the time
    free = tail_thresholds(scores[0], ThresholdSettings(q=1e-3, floor=1.0, xi_max=0.3))
    assert np.mean(free[300:] > 4.0) > 0.5
    with pytest.raises(ValueError, match="ceiling must be >= floor"):
        ThresholdSettings(floor=5.0, ceiling=4.0)


def test_classifier_needs_bars_clear_error():
    from tickwise.exceptions import InputError

    with pytest.raises(InputError, match="needs OHLCV bars"):
        make_detector("classifier", spec=FeatureSpec.values(("cpu",)))


def test_classifier_flags_flash_crash_and_recovery_on_unseen_stock(goog_bars):
    """Trained without GOOG: a flash crash (deep low, close half down, 3x volume, recovery next
    bar) crosses the classifier's own threshold, and the divergence model's words come along."""
    bars, events = inject(goog_bars, kinds=["flash_crash"], rate=0.01, start=800, seed=11, magnitude=(6.0, 10.0))
    det = _detector("classifier")
    scores = det.score(bars)
    flags = scores.score > tail_thresholds(scores.score, threshold_settings("classifier"))
    hit = [flags[e.start:e.end + 2].any() for e in events]
    assert np.mean(hit) >= 0.8, f"found {np.mean(hit):.2f} of flash crashes"
    normal = np.ones(bars.height, bool)
    normal[:800] = False
    for e in events:
        normal[e.start:e.end + 2] = False
    assert flags[normal].mean() < 0.005
    first = next(e for e, h in zip(events, hit, strict=True) if h)
    row = first.start + int(np.argmax(flags[first.start:first.end + 2]))
    explanation = det.explain(scores, row)
    assert explanation.top_feature in ("return", "range", "swing"), explanation.text
