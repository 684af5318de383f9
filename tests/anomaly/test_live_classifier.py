"""The classifier detector in the live anomaly stage: bars in, anomalies out, explained."""

from __future__ import annotations

import polars as pl
import pytest

from tests.conftest import shared_file
from tickwise.alerts.notifiers import MemoryNotifier
from tickwise.alerts.rules import AlertRule
from tickwise.anomaly import make_detector, tail_thresholds, threshold_settings
from tickwise.anomaly.inject import inject
from tickwise.anomaly.learned import ClassifierModel, Training, trained
from tickwise.anomaly.stage import AnomalyStage
from tickwise.sources.files import read_bars


@pytest.mark.parametrize("ready_after", [0, 4], ids=["ready", "fit-comes-late"])
def test_stage_with_classifier_flags_injected_flash_crashes_with_explanations(monkeypatch, ready_after):
    """With ``fit-comes-late`` the classifier cannot score the first four batches (1,200 bars,
    its first fit in the background): they are held and scored by the fifth, so the stage
    still flags exactly the bars the batch form flags, the held ones late."""
    bars = read_bars(shared_file("goog_daily_backtesting.csv")).sort("ts")
    bars, events = inject(bars, kinds=["flash_crash"], rate=0.01, start=800, seed=4, magnitude=(8.0, 12.0))
    trained(Training())  # fitted first: the live stage does not wait for a first fit (test_modelcache)
    sink = MemoryNotifier()
    stage = AnomalyStage(timeframes=("1d",), detectors=("divergence", "classifier"), notifiers=[sink],
                         rules=[AlertRule(name="r", cooldown_s=0)])
    found = []
    ready = {"now": False}
    monkeypatch.setattr(ClassifierModel, "ready_for", lambda self, context: ready["now"])
    try:
        for k, chunk in enumerate(bars.iter_slices(300)):
            ready["now"] = k >= ready_after
            out = stage.on_bars(chunk)
            if "anomalies" in out.tables:
                found.append(out.tables["anomalies"])
        assert stage.outbox.flush(timeout_s=5)
    finally:
        stage.close()
    rows = pl.concat(found).filter(pl.col("detector") == "classifier")
    ts = bars["ts"]
    hit = [rows.filter(pl.col("ts").is_between(ts[e.start], ts[e.end + 1])).height > 0 for e in events]
    assert len(events) >= 10 and sum(hit) >= 0.5 * len(events)
    # the live stage flags exactly the bars the batch form flags
    scores = make_detector("classifier").score(bars).score
    flags = scores > tail_thresholds(scores, threshold_settings("classifier"))
    assert sorted(rows["ts"].to_list()) == ts.filter(pl.Series(flags)).to_list()
    assert (rows["score"] > rows["threshold"]).all()
    assert rows["explanation"].str.len_chars().min() > 10
    assert len(sink.sent) >= 1
