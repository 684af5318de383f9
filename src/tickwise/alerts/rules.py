"""Alert rules: which anomalies notify someone, with de-duplication and a cooldown.

An anomaly is a mapping with at least symbol, timeframe, ts (UTC ns), detector, score,
threshold, kind and explanation. A rule matches by detector, kind and ``score / threshold``;
per (symbol, rule) at most one alert is raised per ``cooldown_s`` of *event* time (the
anomalies' own timestamps, so replays and restarts behave the same); suppressed matches
are counted into the next alert. The same anomaly delivered twice (the bus delivers at
least once) raises nothing the second time. `AlertRouter.restore` carries both memories over
a restart (the live stage reads them back from the ``alerts`` table).
"""

from __future__ import annotations

import bisect
import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRule:
    """One alert rule.

    Examples
    --------
    >>> AlertRule(name="any", cooldown_s=60).matches({"detector": "zscore", "kind": "gap",
    ...     "score": 9.0, "threshold": 6.0})
    True
    """

    name: str
    detectors: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    min_ratio: float = 1.0
    cooldown_s: float = 300.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("rule name must be non-empty, was ''")
        if self.cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0, was {self.cooldown_s}")

    def matches(self, anomaly: Mapping[str, object]) -> bool:
        if self.detectors and anomaly["detector"] not in self.detectors:
            return False
        if self.kinds and anomaly["kind"] not in self.kinds:
            return False
        score, threshold = float(anomaly["score"]), float(anomaly["threshold"])  # type: ignore[arg-type]
        return threshold <= 0 or score / threshold >= self.min_ratio


@dataclass(frozen=True, slots=True)
class Alert:
    """A notification to deliver: the anomaly that raised it and how many were suppressed."""

    alert_id: str
    rule: str
    anomaly: dict[str, object]
    suppressed: int = 0

    def payload(self) -> dict[str, object]:
        """The JSON body notifiers send."""
        return {"alert_id": self.alert_id, "rule": self.rule, "suppressed_since_last": self.suppressed,
                **self.anomaly}


def alert_id(rule: str, anomaly: Mapping[str, object]) -> str:
    """Stable id of the alert one anomaly raises under one rule.

    Examples
    --------
    >>> a = {"symbol": "AAPL", "timeframe": "1m", "ts": 0, "detector": "zscore"}
    >>> alert_id("r", a) == alert_id("r", dict(a))
    True
    """
    key = f"{rule}|{anomaly['symbol']}|{anomaly['timeframe']}|{anomaly['ts']}|{anomaly['detector']}"
    return hashlib.sha1(key.encode()).hexdigest()[:20]


@dataclass(slots=True)
class AlertRouter:
    """Apply rules to anomalies, oldest first.

    Examples
    --------
    >>> router = AlertRouter([AlertRule(name="r", cooldown_s=60)])
    >>> burst = [{"symbol": "X", "timeframe": "1s", "ts": i * 10**9, "detector": "zscore",
    ...           "kind": "gap", "score": 9.0, "threshold": 5.0} for i in range(100)]
    >>> [a.anomaly["ts"] // 10**9 for a in router.route(burst)]
    [0, 60]
    """

    rules: Sequence[AlertRule]
    max_remembered: int = 100_000
    #: alert times kept per (symbol, rule), newest; older ones no longer hold anything back
    max_times: int = 64
    _times: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    _suppressed: dict[tuple[str, str], int] = field(default_factory=dict)
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def route(self, anomalies: Iterable[Mapping[str, object]]) -> list[Alert]:
        alerts: list[Alert] = []
        for anomaly in sorted(anomalies, key=lambda a: int(a["ts"])):  # type: ignore[arg-type]
            for rule in self.rules:
                if not rule.matches(anomaly):
                    continue
                aid = alert_id(rule.name, anomaly)
                if aid in self._seen:
                    continue
                self._remember(aid)
                key = (str(anomaly["symbol"]), rule.name)
                ts = int(anomaly["ts"])  # type: ignore[arg-type]
                if self._cooling(key, ts, rule.cooldown_s):
                    self._suppressed[key] = self._suppressed.get(key, 0) + 1
                    continue
                self._raised(key, ts)
                alerts.append(Alert(aid, rule.name, dict(anomaly), self._suppressed.pop(key, 0)))
        return alerts

    def restore(self, raised: Iterable[tuple[str, str, str, int]]) -> int:
        """Remember alerts raised before a restart, each ``(alert_id, symbol, rule, ts)``
        (``ts`` in UTC ns): an anomaly that raised one raises nothing again, and each
        (symbol, rule) cooldown runs on from its newest alert. Returns how many (symbol, rule)
        cooldowns were restored. Counts of suppressed matches are not restored.

        Examples
        --------
        >>> router = AlertRouter([AlertRule(name="r", cooldown_s=60)])
        >>> router.restore([("a0", "X", "r", 0)])
        1
        >>> later = [{"symbol": "X", "timeframe": "1s", "ts": s * 10**9, "detector": "zscore",
        ...           "kind": "gap", "score": 9.0, "threshold": 5.0} for s in (30, 61)]
        >>> [a.anomaly["ts"] // 10**9 for a in router.route(later)]
        [61]
        >>> older = [{**later[0], "ts": s * 10**9} for s in (-3600, -3590, -3500, -30)]
        >>> [a.anomaly["ts"] // 10**9 for a in router.route(older)]  # history replayed later
        [-3600, -3500]
        """
        keys = set()
        for aid, symbol, rule, ts in sorted(raised, key=lambda r: r[3]):
            self._remember(aid)
            key = (symbol, rule)
            keys.add(key)
            if int(ts) not in self._times.get(key, ()):  # restored again (a rebalance): once is enough
                self._raised(key, int(ts))
        return len(keys)

    def _cooling(self, key: tuple[str, str], ts: int, cooldown_s: float) -> bool:
        """Whether an alert of ``key`` lies within the cooldown of ``ts``, before or after it
        (after: a restored memory is newer than a replay of older history)."""
        times = self._times.get(key)
        if not times:
            return False
        i = bisect.bisect_left(times, ts)
        near = [times[j] for j in (i - 1, i) if 0 <= j < len(times)]
        return any(abs(ts - t) < cooldown_s * NS_PER_S for t in near)

    def _raised(self, key: tuple[str, str], ts: int) -> None:
        times = self._times.setdefault(key, [])
        bisect.insort(times, ts)
        if len(times) > self.max_times:
            del times[0]

    def _remember(self, aid: str) -> None:
        self._seen[aid] = None
        while len(self._seen) > self.max_remembered:
            self._seen.popitem(last=False)
