"""The live anomaly stage: every closed bar is scored (before it is learned) by each
configured detector; anomalies go to the ``anomalies`` table and topic, and alert rules
turn them into notifications delivered by a background outbox whose statuses land in the
``alerts`` table.

Bars of one call are processed in rounds: round k holds the k-th bar of every symbol in
the call, so each round is one vectorised step over symbols.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import polars as pl

from tickwise.alerts.notifiers import LogNotifier, Notifier, SnsNotifier, WebhookNotifier
from tickwise.alerts.outbox import Delivery, Outbox
from tickwise.alerts.rules import AlertRouter, AlertRule
from tickwise.alerts.tables import ALERTS
from tickwise.anomaly import DETECTORS, make_bands, make_model, threshold_settings
from tickwise.anomaly.multi import MultiSymbolDetector
from tickwise.anomaly.tables import ANOMALIES
from tickwise.anomaly.threshold import ThresholdSettings
from tickwise.bus.base import ANOMALIES as ANOMALIES_TOPIC
from tickwise.codec import encode_json
from tickwise.config import Settings
from tickwise.exceptions import ConfigError
from tickwise.pipeline.stages import StageOutput

_FIELDS = ("open", "high", "low", "close", "volume")


class AnomalyStage:
    """A `BarStage` running anomaly detectors and alert rules on closed bars.

    Examples
    --------
    >>> from tickwise.alerts.notifiers import MemoryNotifier
    >>> stage = AnomalyStage(timeframes=("1m",), detectors=("zscore",), notifiers=[MemoryNotifier()])
    >>> stage.on_bars(pl.DataFrame()).tables
    {}
    >>> stage.close()
    """

    name = "anomaly"

    def __init__(self, *, timeframes: Sequence[str], detectors: Sequence[str] = ("zscore",),
                 rules: Sequence[AlertRule] | None = None, notifiers: Sequence[Notifier] | None = None,
                 false_alarm_rate: float = 1e-3, outbox: Outbox | None = None,
                 window: int = 60) -> None:
        for d in detectors:
            if d not in DETECTORS:
                raise ConfigError(f"setting TICKWISE_ANOMALY_DETECTORS must name {', '.join(DETECTORS)}, was {d!r}")
        self.timeframes = tuple(timeframes)
        self.detector_names = tuple(detectors)
        self._q = false_alarm_rate
        ThresholdSettings(q=false_alarm_rate)  # validate early
        self._window = window
        self._engines: dict[tuple[str, str], MultiSymbolDetector] = {}
        self.router = AlertRouter(list(rules or [AlertRule(name="anomaly", cooldown_s=300.0)]))
        self.outbox = outbox or Outbox(list(notifiers or [LogNotifier()]))

    def _engine(self, timeframe: str, detector: str) -> MultiSymbolDetector:
        key = (timeframe, detector)
        if key not in self._engines:
            self._engines[key] = MultiSymbolDetector(
                make_model(detector), bands=make_bands(detector, window=self._window),
                thresholds=threshold_settings(detector, q=self._q))
        return self._engines[key]

    def on_bars(self, bars: pl.DataFrame) -> StageOutput:
        """Score, threshold, explain, then learn every bar; route anomalies to alerts."""
        out = StageOutput()
        rows: list[dict[str, object]] = []
        if bars.height:
            frame = bars.sort("ts").with_columns(
                pl.col("ts").dt.epoch("ns").alias("_ts_ns"),
                pl.int_range(pl.len()).over("symbol", "timeframe").alias("_round"),
            )
            for (timeframe,), part in frame.group_by(["timeframe"], maintain_order=True):
                for (_,), rnd in part.group_by(["_round"], maintain_order=True):
                    rows.extend(self._round(str(timeframe), rnd))
        if rows:
            table = pl.DataFrame(rows).with_columns(
                pl.col("ts").cast(pl.Datetime("ns", "UTC")), pl.col("ts_detected").cast(pl.Datetime("ns", "UTC")))
            out.tables[ANOMALIES.name] = table
            out.topics[ANOMALIES_TOPIC] = [encode_json(r) for r in rows]
            self.outbox.submit(self.router.route(rows))
        changes = self.outbox.changes()
        if changes:
            out.tables[ALERTS.name] = alert_rows(changes)
        return out

    def _round(self, timeframe: str, rnd: pl.DataFrame) -> list[dict[str, object]]:
        symbols = rnd.get_column("symbol").to_list()
        fields = {k: rnd.get_column(k).cast(pl.Float64).to_numpy() for k in _FIELDS}
        ts = rnd.get_column("_ts_ns").to_numpy()
        found = []
        now = time.time_ns()
        for name in self.detector_names:
            res = self._engine(timeframe, name).step(symbols, fields)
            for i in np.flatnonzero(res.is_anomaly).tolist():
                e = res.explanations[i]
                found.append({
                    "symbol": symbols[i], "timeframe": timeframe, "ts": int(ts[i]), "detector": name,
                    "score": float(res.score[i]), "threshold": float(res.threshold[i]), "kind": e.kind,
                    "explanation": e.text, "ts_detected": now,
                })
        return found

    def close(self) -> None:
        self.outbox.close()


def alert_rows(deliveries: Sequence[Delivery]) -> pl.DataFrame:
    """Rows of the ``alerts`` table for delivery records."""
    recs = []
    for d in deliveries:
        a = d.alert.anomaly
        recs.append({
            "alert_id": d.alert.alert_id, "notifier": d.notifier, "rule": d.alert.rule,
            "symbol": a.get("symbol"), "timeframe": a.get("timeframe"), "ts": int(a.get("ts", 0)),  # type: ignore[call-overload]
            "detector": a.get("detector"), "kind": a.get("kind"), "explanation": a.get("explanation"),
            "suppressed": d.alert.suppressed, "status": d.status, "attempts": d.attempts,
            "last_error": d.last_error, "ts_created": d.ts_created, "ts_updated": d.ts_updated,
        })
    return pl.DataFrame(recs).with_columns(
        *(pl.col(c).cast(pl.Datetime("ns", "UTC")) for c in ("ts", "ts_created", "ts_updated")))


def make_stage(settings: Settings) -> AnomalyStage:
    """Build the stage from settings (detectors, false-alarm rate, cooldown, notifiers)."""
    notifiers: list[Notifier] = [LogNotifier()]
    if settings.alert_webhook_url:
        notifiers.append(WebhookNotifier(settings.alert_webhook_url))
    if settings.alert_sns_topic_arn:
        notifiers.append(SnsNotifier(settings.alert_sns_topic_arn, endpoint_url=settings.alert_sns_endpoint or None))
    return AnomalyStage(
        timeframes=tuple(settings.timeframes), detectors=tuple(settings.anomaly_detectors),
        rules=[AlertRule(name="anomaly", cooldown_s=settings.alert_cooldown_s)],
        notifiers=notifiers, false_alarm_rate=settings.anomaly_false_alarm_rate,
    )
