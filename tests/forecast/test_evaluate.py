"""Walk-forward evaluation: no look-ahead, the scores, the JSON shape, the report."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest

from tickwise.exceptions import DataError, InputError
from tickwise.forecast import make_model, walk_forward
from tickwise.forecast.evaluate import SCORE_KEYS
from tickwise.forecast.report import render_report

FAST = {
    "naive": partial(make_model, "naive"),
    "drift": partial(make_model, "drift"),
    "ets": partial(make_model, "ets"),
    "arima": partial(make_model, "arima", order=(1, 1, 1)),
    "lstm": partial(make_model, "lstm", window=8, hidden=8, epochs=2),
}


def test_walk_forward_perturbed_future_leaves_earlier_forecasts_unchanged(msft):
    bars = msft[-260:].copy()
    base = walk_forward(bars, FAST, origins=40, refit_every=10, window=200)
    cut = 240  # perturb every bar from here on: prices scrambled, volumes scaled
    rng = np.random.default_rng(1)
    shaken = bars.copy()
    shaken[cut:, :4] *= rng.uniform(0.5, 1.5, size=(len(bars) - cut, 1))
    shaken[cut:, 1] = shaken[cut:, :4].max(axis=1)
    shaken[cut:, 2] = shaken[cut:, :4].min(axis=1)
    shaken[cut:, 4] *= 3.0
    moved = walk_forward(shaken, FAST, origins=40, refit_every=10, window=200)
    before = base.origins <= cut  # the forecast of bar `cut` uses bars < cut only
    for name in FAST:
        np.testing.assert_array_equal(base.runs[name].mean[before], moved.runs[name].mean[before], err_msg=name)
        np.testing.assert_array_equal(base.runs[name].hi[95][before], moved.runs[name].hi[95][before], err_msg=name)
        assert not np.array_equal(base.runs[name].mean[~before], moved.runs[name].mean[~before]), name


def test_walk_forward_naive_scores_match_hand_computation(msft):
    close = msft[-120:, 3]
    wf = walk_forward(close, {"naive": FAST["naive"]}, origins=50, refit_every=7, window=60)
    s = wf.scores()["naive"]
    actual, last = close[70:], close[69:-1]
    assert s["mae"] == pytest.approx(np.mean(np.abs(actual - last)))
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean((actual - last) ** 2)))
    assert s["mase"] == pytest.approx(s["mae"] / np.mean(np.abs(np.diff(close[10:70]))))
    assert s["directional_accuracy"] == 0.5
    assert 0.0 <= s["coverage_80"] <= s["coverage_95"] <= 1.0


def test_walk_forward_json_has_exactly_the_issue_shape(msft):
    wf = walk_forward(msft[-100:], {"naive": FAST["naive"], "drift": FAST["drift"]}, origins=20)
    doc = json.loads(json.dumps(wf.to_json()))
    assert list(doc) == ["models"]
    assert list(doc["models"]) == ["naive", "drift"]
    for scores in doc["models"].values():
        assert list(scores) == list(SCORE_KEYS)
        assert all(isinstance(v, float) for v in scores.values())


def test_walk_forward_bad_arguments_raise_clear_errors(msft):
    with pytest.raises(InputError, match="refit_every must be >= 1, was 0"):
        walk_forward(msft, {"naive": FAST["naive"]}, refit_every=0)
    with pytest.raises(DataError, match="at least 253 bars, was 30"):
        walk_forward(msft[:30], {"naive": FAST["naive"]}, origins=250)


def test_report_is_self_contained_html_with_plots(msft):
    wf = walk_forward(msft[-100:], {"naive": FAST["naive"], "drift": FAST["drift"]}, origins=20)
    page = render_report(wf, title="MSFT")
    assert page.startswith("<!doctype html>") and "<table" in page
    assert "Plotly.newPlot" in page and "<script src=" not in page  # plotly.js inlined, works offline


def test_versus_naive_reports_ratio_and_diebold_mariano(msft):
    wf = walk_forward(msft[-200:], {"naive": FAST["naive"], "drift": FAST["drift"]}, origins=100)
    vs = wf.versus("naive")
    assert vs["naive"] == {"mae_ratio": 1.0, "dm_p_value": 1.0}
    assert vs["drift"]["mae_ratio"] == pytest.approx(wf.scores()["drift"]["mae"] / wf.scores()["naive"]["mae"])
    assert 0.0 < vs["drift"]["dm_p_value"] <= 1.0
    with pytest.raises(InputError, match="baseline must be one of"):
        wf.versus("arima")
