"""The stale detector: runs of flat bars against the series' own rate of them."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from tickwise.anomaly import make_detector, make_model, tail_thresholds, threshold_settings
from tickwise.anomaly.inject import inject
from tickwise.anomaly.multi import MultiSymbolDetector
from tickwise.cli import app


def _flags(det, bars: pl.DataFrame, q: float = 1e-3) -> tuple[np.ndarray, object]:
    scores = det.score(bars)
    return scores.score > tail_thresholds(scores.score, threshold_settings("stale", q=q)), scores


def _records(bars: pl.DataFrame) -> list[dict[str, float]]:
    return bars.select("open", "high", "low", "close", "volume").to_dicts()


def _freeze(bars: pl.DataFrame, at: int, n: int) -> pl.DataFrame:
    """Bars ``at`` .. ``at + n - 1`` repeat the close before them (open, high, low and close)."""
    cols = {c: bars[c].to_numpy().copy() for c in ("open", "high", "low", "close")}
    p = cols["close"][at - 1]
    for c in cols.values():
        c[at:at + n] = p
    return bars.with_columns(*(pl.Series(c, v) for c, v in cols.items()))


def _flat_markov(n: int, p_start: float, p_cont: float, seed: int) -> pl.DataFrame:
    """Bars of a quote that is flat (one price, the last close) in clusters: a flat bar
    follows a moving one with probability ``p_start``, a flat one with ``p_cont``."""
    rng = np.random.default_rng(seed)
    flat = np.zeros(n, dtype=bool)
    for t in range(1, n):
        flat[t] = rng.random() < (p_cont if flat[t - 1] else p_start)
    close = 100 * np.exp(np.cumsum(np.where(flat, 0.0, rng.normal(0, 0.001, n))))
    prev = np.r_[close[0], close[:-1]]
    high = np.where(flat, close, np.maximum(close, prev) * 1.0005)
    low = np.where(flat, close, np.minimum(close, prev) * 0.9995)
    return pl.DataFrame({"open": prev, "high": high, "low": low, "close": close, "volume": rng.lognormal(8, 0.3, n)})


def test_stale_flags_injected_frozen_runs_on_real_data_and_nothing_else(goog_bars):
    bars, events = inject(goog_bars, kinds=["frozen_price"], rate=0.01, start=800, seed=3, magnitude=(6.0, 10.0))
    flags, _ = _flags(make_detector("stale"), bars)
    hit = [flags[e.start:e.end + 2].any() for e in events]
    near = np.zeros(bars.height, dtype=bool)
    for e in events:
        near[e.start:e.end + 2] = True
    assert len(events) >= 10
    assert np.mean(hit) >= 0.9, f"found {np.mean(hit):.2f} of {len(events)} frozen runs"
    assert flags[~near].sum() == 0


@pytest.mark.parametrize("kind", ["price_spike", "level_shift", "volume_burst", "flash_crash"])
def test_stale_is_silent_on_moves(goog_bars, kind):
    bars, _ = inject(goog_bars, kinds=[kind], rate=0.01, start=800, seed=4, magnitude=(10.0, 14.0))
    flags, scores = _flags(make_detector("stale"), bars)
    assert flags.sum() == 0
    assert np.nanmax(scores.score) == 0.0  # GOOG daily has no flat bar: nothing to score


def test_stale_series_that_is_often_flat_needs_a_run_longer_than_its_own(goog_bars):
    rates = []
    for seed in (1, 2, 3):  # flat a third of the time, in runs of two on average
        flags, _ = _flags(make_detector("stale"), _flat_markov(6000, p_start=0.3, p_cont=0.5, seed=seed))
        rates.append(flags[300:].mean())
    # natural runs flagged at a few times the target rate (1e-3) at most: every bar of a run
    # rarer than that is flagged while it lasts, and the window's rates are estimates
    assert np.mean(rates) < 0.003, rates
    quiet = _flat_markov(4000, p_start=0.3, p_cont=0.5, seed=1)
    frozen = _freeze(quiet, 3000, 16)
    flags, _ = _flags(make_detector("stale"), frozen)
    assert flags[3000:3016].any()
    first = int(np.flatnonzero(flags[3000:3016])[0])
    assert first >= 5, "a run as long as this series' own should not be flagged"


def test_stale_a_frozen_run_is_not_learned_as_normal(goog_bars):
    bars = _freeze(_freeze(goog_bars, 1000, 6), 1080, 6)  # the second within the first one's window
    flags, scores = _flags(make_detector("stale"), bars)
    assert flags[1000:1006].any() and flags[1080:1086].any()
    np.testing.assert_allclose(scores.score[1083], scores.score[1003], atol=0.05)


def test_stale_explains_the_run(goog_bars):
    bars = _freeze(goog_bars, 1000, 8)
    det = make_detector("stale")
    flags, scores = _flags(det, bars)
    i = int(np.flatnonzero(flags)[0])
    e = det.explain(scores, i)
    assert e.top_feature == "range" and e.kind == "frozen_price"
    assert f"unchanged for {i - 999} bars" in e.text and "no high-low range" in e.text


def test_stale_streaming_equals_batch(goog_bars):
    bars = _freeze(_freeze(goog_bars.head(700), 400, 7), 600, 3)
    batch = make_detector("stale").score(bars).score
    det = make_detector("stale")
    stream = []
    for rec in _records(bars):
        stream.append(det.score_one(rec))
        det.learn_one(rec)
    np.testing.assert_array_equal(np.isnan(np.array(stream)), np.isnan(batch))
    np.testing.assert_allclose(stream, batch, rtol=1e-12, equal_nan=True)
    assert np.nanmax(batch) > 3


def test_stale_perturbed_future_leaves_past_scores_unchanged(goog_bars):
    bars = _freeze(goog_bars.head(900), 500, 6)
    cut = 650
    future = _freeze(_freeze(bars, 700, 9), 800, 4)
    a = make_detector("stale").score(bars).score
    b = make_detector("stale").score(future).score
    np.testing.assert_array_equal(a[:cut], b[:cut])
    assert not np.array_equal(a[cut:], b[cut:])


def test_stale_many_symbols_equal_one_series_each_and_state_moves_between_detectors(goog_bars):
    a_bars = _freeze(goog_bars.head(600), 300, 7)
    b_bars = _freeze(_flat_markov(600, 0.2, 0.4, seed=2), 450, 12)
    multi = MultiSymbolDetector(make_model("stale"), thresholds=threshold_settings("stale"))
    fields = {c: np.column_stack([a_bars[c].to_numpy(), b_bars[c].to_numpy()])
              for c in ("open", "high", "low", "close", "volume")}
    steps = [multi.step(["A", "B"], {c: v[t] for c, v in fields.items()}) for t in range(400)]
    moved = MultiSymbolDetector(make_model("stale"), thresholds=threshold_settings("stale"))
    for s in ("A", "B"):
        moved.import_state(s, multi.export_state(s))
    for t in range(400, 600):
        one = {c: v[t] for c, v in fields.items()}
        x, y = multi.step(["A", "B"], one), moved.step(["A", "B"], one)
        np.testing.assert_array_equal(x.score, y.score)
        steps.append(x)
    live = np.array([s.score for s in steps])
    for j, bars in enumerate((a_bars, b_bars)):
        np.testing.assert_allclose(live[:, j], make_detector("stale").score(bars).score, equal_nan=True)
    flagged = [s.explanations[0].text for s in steps[300:310] if 0 in s.explanations]
    assert flagged and "unchanged for" in flagged[0]


def test_detect_stale_on_a_value_series(tmp_path):
    rng = np.random.default_rng(0)
    v = 50 + np.cumsum(rng.normal(0, 1, 600))
    v[400:410] = v[399]  # a sensor stuck at its last reading
    src = tmp_path / "sensor.csv"
    pl.DataFrame({"timestamp": [f"2024-01-01T{i // 60:02d}:{i % 60:02d}:00" for i in range(600)], "temp": v}).write_csv(src)
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["detect", "--data", str(src), "--detector", "stale", "--out", str(out)])
    assert result.exit_code == 0, result.output
    scores = pl.read_csv(out)
    flagged = np.flatnonzero(scores["is_anomaly"].to_numpy())
    assert flagged.size and set(flagged) <= set(range(400, 410))
    assert "unchanged for" in scores["explanation"][int(flagged[0])]


def test_stale_needs_moves_to_read():
    with pytest.raises(ValueError, match="bar features or \\*_change"):
        make_model("stale", names=("level",))
