"""Alerts: rules that turn anomalies into notifications, notifiers, and a delivery outbox.

``AlertRouter`` applies `AlertRule`s with de-duplication and a cooldown per (symbol, rule);
``Outbox`` delivers in a background thread with bounded exponential backoff and keeps every
undelivered alert visible (pending or failed); notifiers: log, webhook (HTTP POST JSON),
AWS SNS, and an in-memory fake for tests.
"""

from __future__ import annotations

from tickwise.alerts.notifiers import (
    LogNotifier,
    MemoryNotifier,
    Notifier,
    NotifierError,
    SnsNotifier,
    WebhookNotifier,
)
from tickwise.alerts.outbox import Delivery, Outbox
from tickwise.alerts.rules import Alert, AlertRouter, AlertRule

__all__ = [
    "Alert",
    "AlertRouter",
    "AlertRule",
    "Delivery",
    "LogNotifier",
    "MemoryNotifier",
    "Notifier",
    "NotifierError",
    "Outbox",
    "SnsNotifier",
    "WebhookNotifier",
]
