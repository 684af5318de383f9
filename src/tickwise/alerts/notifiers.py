"""Notifiers: where alerts go. Each has a ``name`` and ``send(payload)``, which raises
`NotifierError` on failure (the outbox retries); none of them retries by itself.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from tickwise.exceptions import BackendError

log = logging.getLogger("tickwise.alerts")


class NotifierError(BackendError):
    """One delivery attempt failed."""


class Notifier(Protocol):
    """Something that delivers one alert payload."""

    name: str

    def send(self, payload: Mapping[str, Any]) -> None:
        """Deliver once; raise `NotifierError` on failure."""
        ...


class LogNotifier:
    """Write alerts to the ``tickwise.alerts`` logger.

    Examples
    --------
    >>> LogNotifier().send({"symbol": "AAPL", "explanation": "volume 14x"})
    """

    name = "log"

    def send(self, payload: Mapping[str, Any]) -> None:
        log.warning("anomaly alert %s %s: %s", payload.get("symbol"), payload.get("kind", ""),
                    payload.get("explanation", ""))


class MemoryNotifier:
    """Keep payloads in memory; fail the first ``fail_first`` attempts (a test fake).

    Examples
    --------
    >>> m = MemoryNotifier(fail_first=1)
    >>> try:
    ...     m.send({"a": 1})
    ... except NotifierError:
    ...     pass
    >>> m.send({"a": 1}); m.sent
    [{'a': 1}]
    """

    def __init__(self, *, name: str = "memory", fail_first: int = 0) -> None:
        self.name = name
        self.fail_first = fail_first
        self.attempts = 0
        self.sent: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def send(self, payload: Mapping[str, Any]) -> None:
        with self._lock:
            self.attempts += 1
            if self.attempts <= self.fail_first:
                raise NotifierError(f"memory notifier failing on purpose (attempt {self.attempts})")
            self.sent.append(dict(payload))


class WebhookNotifier:
    """POST the alert as JSON to a URL; any non-2xx answer or transport error fails.

    Examples
    --------
    >>> WebhookNotifier("http://127.0.0.1:9/hook").name
    'webhook'
    """

    name = "webhook"

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://, was {url!r}")
        self.url = url
        self.timeout_s = timeout_s
        self._client: Any = None

    def send(self, payload: Mapping[str, Any]) -> None:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout_s)
        try:
            resp = self._client.post(self.url, content=json.dumps(payload, default=str),
                                     headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            raise NotifierError(f"webhook {self.url} unreachable: {type(exc).__name__}: {exc}") from None
        if resp.status_code >= 300:
            raise NotifierError(f"webhook {self.url} answered {resp.status_code}, expected 2xx")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class SnsNotifier:
    """Publish the alert as JSON to an AWS SNS topic (boto3; ``endpoint_url`` for moto/LocalStack).

    Examples
    --------
    >>> SnsNotifier("arn:aws:sns:us-east-1:123456789012:alerts").name
    'sns'
    """

    name = "sns"

    def __init__(self, topic_arn: str, *, endpoint_url: str | None = None, region: str = "us-east-1",
                 **client_options: Any) -> None:
        if not topic_arn.startswith("arn:"):
            raise ValueError(f"topic_arn must be an SNS ARN (arn:aws:sns:...), was {topic_arn!r}")
        self.topic_arn = topic_arn
        self.endpoint_url = endpoint_url
        self.region = region
        self.client_options = client_options
        self._client: Any = None

    def send(self, payload: Mapping[str, Any]) -> None:
        import boto3
        import botocore.exceptions

        if self._client is None:
            self._client = boto3.client("sns", region_name=self.region, endpoint_url=self.endpoint_url,
                                        **self.client_options)
        subject = f"tickwise anomaly {payload.get('symbol', '')} {payload.get('kind', '')}".strip()[:99]
        try:
            self._client.publish(TopicArn=self.topic_arn, Subject=subject,
                                 Message=json.dumps(payload, default=str))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise NotifierError(f"SNS publish to {self.topic_arn} failed: {exc}") from None
