"""The market context: the classifier reads the other symbols' bars of the same time."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.conftest import shared_file
from tickwise.anomaly import make_bands, make_detector, make_model, threshold_settings
from tickwise.anomaly.detector import Detector
from tickwise.anomaly.evaluate import evaluate
from tickwise.anomaly.learned import Training, trained
from tickwise.anomaly.market import WIDTH, loo_median, market_context, score_together
from tickwise.anomaly.multi import MultiSymbolDetector
from tickwise.anomaly.stage import AnomalyStage
from tickwise.exceptions import ConfigError
from tickwise.sources.files import read_bars

FIELDS = ("open", "high", "low", "close", "volume")


@pytest.fixture(scope="module")
def market() -> list[pl.DataFrame]:
    """GOOG, MSFT and the S&P 500, daily, on the dates all three trade (2004-08-19 to 2013-03-01, 2,148 bars)."""
    frames = [read_bars(shared_file(f)).sort("ts") for f in
              ("goog_daily_backtesting.csv", "msft_daily_pmdarima.csv", "sp500_daily_arch.csv")]
    common = set(frames[0]["ts"].to_list())
    for f in frames[1:]:
        common &= set(f["ts"].to_list())
    days = pl.Series("ts", sorted(common))
    for training in (Training(), Training(market=True)):  # the shipped ensembles, fitted once per machine
        trained(training)  # (a live step does not wait for a fit: it scores nothing until one is done)
    return [f.filter(pl.col("ts").is_in(days.implode())) for f in frames]


def test_loo_median_is_the_median_of_the_other_rows_of_the_group():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        groups, values = rng.integers(0, 3, n), rng.normal(size=(n, 3)).round(1)
        got = loo_median(values, groups)
        for i in range(n):
            others = [j for j in range(n) if j != i and groups[j] == groups[i]]
            want = np.median(values[others], axis=0) if others else np.full(3, np.nan)
            np.testing.assert_allclose(got[i], want, equal_nan=True)


def test_market_context_only_ready_bars_of_the_same_time_are_peers():
    z = np.arange(20.0).reshape(4, 5)
    ctx = market_context(z, np.array([1, 1, 1, 2]), np.array([True, True, False, True]))
    assert ctx.shape == (4, WIDTH)
    np.testing.assert_array_equal(ctx[0, :5], z[1])  # bar 2 is not ready: bar 1 is bar 0's one peer
    np.testing.assert_array_equal(ctx[0, 5:], z[0] - z[1])
    assert np.isnan(ctx[2]).all() and np.isnan(ctx[3]).all()  # not ready; alone at its time


def _step_all(det: MultiSymbolDetector, frames: list[pl.DataFrame]) -> list[np.ndarray]:
    """Step the series through one detector, one step per timestamp (what the live stage does)."""
    symbols = [str(i) for i in range(len(frames))]
    out = [np.full(f.height, np.nan) for f in frames]
    for t in range(frames[0].height):
        fields = {k: np.array([float(f[k][t]) for f in frames]) for k in FIELDS}
        ts = np.array([f["ts"].dt.epoch("ns")[t] for f in frames])
        res = det.step(symbols, fields, ts=ts)
        for i in range(len(frames)):
            out[i][t] = res.score[i]
    return out


def test_live_steps_with_peers_equal_the_batch_scored_together(market):
    frames = [f.head(400) for f in market]
    batch = score_together([make_detector("classifier") for _ in frames], frames)
    live = _step_all(MultiSymbolDetector(make_model("classifier"), bands=make_bands("classifier")), frames)
    for b, s in zip(batch, live, strict=True):
        assert b.context is not None and np.isfinite(b.context[b.ready]).all()
        np.testing.assert_allclose(s, b.score, rtol=1e-9, equal_nan=True)
    # with peers the scores are not those of each series alone
    alone = make_detector("classifier").score(frames[0]).score
    assert not np.allclose(alone, batch[0].score, equal_nan=True)


def test_a_bar_time_split_over_steps_gives_later_bars_the_peers_stepped_before_them(market):
    """On a shared bus one bar time's bars come in several batches: GOOG and MSFT in one step,
    the S&P 500 in the next. The S&P 500 still reads both as its market (its scores are those
    of the three scored together); GOOG and MSFT, stepped before it, read each other."""
    frames = [f.head(400) for f in market]
    det = MultiSymbolDetector(make_model("classifier"), bands=make_bands("classifier"))
    live = [np.full(400, np.nan) for _ in frames]
    for t in range(400):
        ts = np.array([f["ts"].dt.epoch("ns")[t] for f in frames])
        for part in ([0, 1], [2]):
            fields = {k: np.array([float(frames[i][k][t]) for i in part]) for k in FIELDS}
            res = det.step([str(i) for i in part], fields, ts=ts[part])
            for j, i in enumerate(part):
                live[i][t] = res.score[j]
    together = score_together([make_detector("classifier") for _ in frames], frames)
    np.testing.assert_allclose(live[2], together[2].score, rtol=1e-9, equal_nan=True)
    pair = score_together([make_detector("classifier") for _ in frames[:2]], frames[:2])
    for i in (0, 1):
        np.testing.assert_allclose(live[i], pair[i].score, rtol=1e-9, equal_nan=True)
    alone = make_detector("classifier").score(frames[2]).score
    assert not np.allclose(live[2], alone, equal_nan=True)  # before: the S&P 500 was scored alone
    assert len(det._peers) <= 16  # only the newest bar times are remembered


def test_bars_stepped_while_the_classifier_was_not_ready_are_scored_when_it_is(market, monkeypatch):
    """The classifier's first fit runs in the background: the bars that came meanwhile are
    held and scored by the first step that can, with the same scores, thresholds and
    explanations as a detector that never waited, their anomalies reported late."""
    frames = [f.head(400) for f in market]
    hits = list(range(60, 300, 40))
    frames[0] = frames[0].with_columns(  # GOOG: a volume burst every 40th bar
        pl.when(pl.int_range(pl.len()).is_in(hits)).then(pl.col("volume") * 20).otherwise(pl.col("volume"))
        .alias("volume"))

    def steps(det: MultiSymbolDetector, ready_from: int) -> list:
        out = []
        for t in range(frames[0].height):
            monkeypatch.setattr(type(det.model), "ready_for", lambda self, context, t=t: t >= ready_from)
            fields = {k: np.array([float(f[k][t]) for f in frames]) for k in FIELDS}
            out.append(det.step(["GOOG", "MSFT", "SPX"], fields, ts=np.array([f["ts"].dt.epoch("ns")[t] for f in frames])))
        return out

    def engine() -> MultiSymbolDetector:
        return MultiSymbolDetector(make_model("classifier"), bands=make_bands("classifier"),
                                   thresholds=threshold_settings("classifier"))

    waited, ref = steps(engine(), 300), steps(engine(), 0)
    assert all(np.isnan(r.score).all() for r in waited[:300])
    found = [(s, int(frames[0]["ts"].dt.epoch("ns")[t]), float(r.score[i]), float(r.threshold[i]), r.explanations[i].text)
             for t, r in enumerate(ref[:300]) for i, s in enumerate(r.symbols) if r.is_anomaly[i]]
    assert len([f for f in found if f[0] == "GOOG"]) >= 5  # the bursts are found
    late = waited[300].late
    assert [(a.symbol, a.ts, a.score, a.threshold, a.explanation.text) for a in late] == found
    for a, b in zip(waited[300:], ref[300:], strict=True):
        np.testing.assert_array_equal(a.score, b.score)
        np.testing.assert_array_equal(a.threshold, b.threshold)


def test_scoring_together_computes_each_series_features_once(market, monkeypatch):
    frames = [f.head(300) for f in market]
    want = [make_detector("classifier").score(f, context=c).score for f, c in
            zip(frames, [s.context for s in score_together([make_detector("classifier") for _ in frames], frames)],
                strict=True)]
    calls = []
    real = Detector.features
    monkeypatch.setattr(Detector, "features", lambda self, data: calls.append(data.height) or real(self, data))
    got = score_together([make_detector("classifier") for _ in frames], frames)
    assert calls == [300, 300, 300]  # once per series: the context and the score share them
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.score, w)


def test_with_the_market_off_live_steps_score_each_series_alone(market):
    frames = [f.head(300) for f in market]
    off = MultiSymbolDetector(make_model("classifier"), bands=make_bands("classifier"), market=False)
    live = _step_all(off, frames)
    for f, s in zip(frames, live, strict=True):
        np.testing.assert_allclose(s, make_detector("classifier").score(f).score, rtol=1e-9, equal_nan=True)
    on = MultiSymbolDetector(make_model("classifier"), bands=make_bands("classifier"))
    assert off.config() != on.config()  # a state saved with the market on is not loaded with it off
    zscore = [MultiSymbolDetector(make_model("zscore"), market=m).config() for m in (True, False)]
    assert zscore[0] == zscore[1]  # a model without the context: the switch changes nothing


def test_the_market_switch_is_checked_and_reaches_the_live_engines():
    with pytest.raises(ConfigError, match="TICKWISE_ANOMALY_MARKET must be on or off, was 'maybe'"):
        AnomalyStage(timeframes=["1d"], detectors=["zscore"], market="maybe")
    assert AnomalyStage(timeframes=["1d"], detectors=["classifier"], market="off")._engine("1d", "classifier").market is False
    assert AnomalyStage(timeframes=["1d"], detectors=["classifier"])._engine("1d", "classifier").market is True


def test_a_peer_s_future_leaves_past_scores_unchanged(market):
    frames = [f.head(400) for f in market]
    before = score_together([make_detector("classifier") for _ in frames], frames)[0].score
    changed = [frames[0], frames[1].with_columns(
        pl.when(pl.int_range(pl.len()) >= 300).then(pl.col("volume") * 20).otherwise(pl.col("volume")).alias("volume"),
        pl.when(pl.int_range(pl.len()) >= 300).then(pl.col("close") * 1.3).otherwise(pl.col("close")).alias("close")),
        frames[2]]
    after = score_together([make_detector("classifier") for _ in frames], changed)[0].score
    np.testing.assert_array_equal(after[:300], before[:300])
    assert not np.allclose(after[300:], before[300:], equal_nan=True)


def test_a_volume_burst_of_the_whole_market_scores_lower_than_one_symbol_s(market):
    """The same 4x volume day in GOOG scores lower when MSFT and the S&P 500 trade 4x too
    (a market-wide day) than when only GOOG does (a fault of one symbol)."""
    rows = list(range(300, 900, 40))

    def burst(frame: pl.DataFrame) -> pl.DataFrame:
        hit = pl.int_range(pl.len()).is_in(rows)
        return frame.with_columns(pl.when(hit).then(pl.col("volume") * 4).otherwise(pl.col("volume")).alias("volume"))

    dets = [make_detector("classifier") for _ in market]
    frames = [f.head(900) for f in market]
    one = score_together(dets, [burst(frames[0]), *frames[1:]])[0].score[rows]
    everyone = score_together(dets, [burst(f) for f in frames])[0].score[rows]
    assert np.median(one - everyone) > 1.0  # log-odds
    assert (one > everyone).mean() >= 0.8


def test_explanations_say_what_the_other_symbols_did_at_the_same_time(market):
    """A 6x volume day in GOOG alone: its explanation gives the peers' median volume z (near 0),
    live and in the batch form alike; the same bar scored alone has no market words."""
    frames = [f.head(700) for f in market]
    hit = 650
    goog = frames[0].with_columns(
        pl.when(pl.int_range(pl.len()) == hit).then(pl.col("volume") * 6).otherwise(pl.col("volume")).alias("volume"))
    frames = [goog, *frames[1:]]
    det = MultiSymbolDetector(make_model("classifier"), bands=make_bands("classifier"))
    texts = {}
    for t in range(hit + 1):
        fields = {k: np.array([float(f[k][t]) for f in frames]) for k in FIELDS}
        res = det.step(["GOOG", "MSFT", "SPX"], fields, ts=np.array([f["ts"].dt.epoch("ns")[t] for f in frames]))
        texts.update({t: res.explanations[0].text} if 0 in res.explanations else {})
    assert hit in texts, "the volume burst was not flagged"
    live = texts[hit]
    assert "volume" in live.split(";")[0] and "other symbols at this time (median): volume " in live
    peers_volume = float(live.split("other symbols at this time (median): volume ")[1].split(" sigma")[0])
    assert abs(peers_volume) < 2.0  # MSFT and the S&P 500 traded as usual
    dets = [make_detector("classifier") for _ in frames]
    scores = score_together(dets, frames)[0]
    assert dets[0].explain(scores, hit).text == live
    single = make_detector("classifier")
    assert "other symbols" not in single.explain(single.score(goog), hit).text


def test_evaluate_cross_section_scores_the_series_of_a_seed_together(market):
    frames = [f.head(1200) for f in market]
    kw = {"detectors": ["classifier"], "per_kind": False, "seed": 7, "start": 400,
          "options": {"classifier": {"training": Training()}}}  # the shipped ensembles: no fit for seed 7
    together = evaluate(frames, **kw).rows[0]
    alone = evaluate(frames, cross_section=False, **kw).rows[0]
    assert together["events"] == alone["events"] > 0
    assert (together["detected"], together["false_alarms"]) != (alone["detected"], alone["false_alarms"])
    assert evaluate(frames, **kw).settings["cross_section"] is True


def test_stage_steps_are_bar_times_so_peers_meet_even_when_a_symbol_skipped_a_bar():
    ts = pl.datetime_range(pl.datetime(2024, 1, 1, time_zone="UTC"), pl.datetime(2024, 1, 1, 0, 4, time_zone="UTC"),
                           "1m", eager=True)
    a = pl.DataFrame({"symbol": "A", "timeframe": "1m", "ts": ts})
    b = pl.DataFrame({"symbol": "B", "timeframe": "1m", "ts": ts}).filter(pl.int_range(pl.len()) != 1)
    bars = pl.concat([a, b]).with_columns(**{k: pl.lit(1.0) for k in FIELDS})
    steps = AnomalyStage._steps(bars)["1m"]
    assert [(set(syms), int(t[0])) for syms, _, t in steps] == [
        ({"A", "B"} if i != 1 else {"A"}, ts.dt.epoch("ns")[i]) for i in range(5)]
    assert all(len(set(t.tolist())) == 1 for _, _, t in steps)


def test_a_classifier_trained_on_one_stock_scores_bars_with_peers_alone():
    """One training stock has no market to learn from: no second ensemble, the context is ignored."""
    from tickwise.anomaly.learned import ClassifierModel

    # seed 11: fits of their own (a process keeps every fit: another test's setting must not be taken)
    one = ClassifierModel(training=Training(members=1, copies=1, max_iter=10, seed=11, exclude=("GOOG", "IBM", "MSFT")))
    two = ClassifierModel(training=Training(members=1, copies=1, max_iter=10, seed=11, exclude=("GOOG", "IBM")))
    assert one.market_training is None and two.market_training is not None
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(50, 3, 10))
    context = np.column_stack([rng.normal(size=(50, WIDTH // 2)), rng.normal(size=(50, WIDTH // 2))])
    np.testing.assert_array_equal(one.score_windows(windows, context), one.score_windows(windows))
    assert one.ready_for(context)
    assert not np.allclose(two.score_windows(windows, context), two.score_windows(windows))
