"""The classifier detector in the live anomaly stage: bars in, anomalies out, explained."""

from __future__ import annotations

import polars as pl

from tests.conftest import shared_file
from tickwise.alerts.notifiers import MemoryNotifier
from tickwise.alerts.rules import AlertRule
from tickwise.anomaly import make_detector, tail_thresholds, threshold_settings
from tickwise.anomaly.inject import inject
from tickwise.anomaly.learned import Training, trained
from tickwise.anomaly.stage import AnomalyStage
from tickwise.sources.files import read_bars


def test_stage_with_classifier_flags_injected_flash_crashes_with_explanations():
    bars = read_bars(shared_file("goog_daily_backtesting.csv")).sort("ts")
    bars, events = inject(bars, kinds=["flash_crash"], rate=0.01, start=800, seed=4, magnitude=(8.0, 12.0))
    trained(Training())  # fitted first: the live stage does not wait for a first fit (test_modelcache)
    sink = MemoryNotifier()
    stage = AnomalyStage(timeframes=("1d",), detectors=("divergence", "classifier"), notifiers=[sink],
                         rules=[AlertRule(name="r", cooldown_s=0)])
    found = []
    try:
        for chunk in bars.iter_slices(300):
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
