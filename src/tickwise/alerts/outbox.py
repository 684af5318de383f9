"""The alert outbox: deliveries in background threads, retried with bounded backoff.

`Outbox.submit` only records deliveries and wakes the workers, so the pipeline never
waits on a notifier. Each notifier has its own worker thread (a hung webhook does not
hold up SNS). A failed attempt is retried after ``base_delay_s * 2 ** (attempt - 1)``
seconds, capped at ``max_delay_s``; after ``max_attempts`` the delivery is ``failed`` and
stays listed (`failed`, `retry_failed`). Nothing is dropped: every delivery is
``pending``, ``sent`` or ``failed``, and `changes` hands each status change to the caller
(the anomaly stage writes them to the ``alerts`` table). `restore` takes back deliveries
saved by an earlier process, so a restart resumes them instead of forgetting them.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from tickwise.alerts.notifiers import Notifier, NotifierError
from tickwise.alerts.rules import Alert

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Delivery:
    """One alert to one notifier."""

    alert: Alert
    notifier: str
    status: str = "pending"
    attempts: int = 0
    last_error: str = ""
    delays_s: list[float] = field(default_factory=list)
    ts_created: int = field(default_factory=time.time_ns)
    ts_updated: int = field(default_factory=time.time_ns)
    next_at: float = 0.0


class Outbox:
    """Deliver alerts to notifiers in the background.

    Examples
    --------
    >>> from tickwise.alerts.notifiers import MemoryNotifier
    >>> from tickwise.alerts.rules import Alert
    >>> sink = MemoryNotifier(fail_first=2)
    >>> box = Outbox([sink], base_delay_s=0.01)
    >>> _ = box.submit([Alert("a1", "r", {"symbol": "X"})])
    >>> box.flush(timeout_s=5)
    True
    >>> d = box.deliveries()[0]; (d.status, d.attempts, d.delays_s)
    ('sent', 3, [0.01, 0.02])
    >>> box.close()
    """

    def __init__(self, notifiers: Sequence[Notifier], *, max_attempts: int = 8, base_delay_s: float = 0.5,
                 max_delay_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, was {max_attempts}")
        if base_delay_s <= 0 or max_delay_s < base_delay_s:
            raise ValueError(f"need 0 < base_delay_s <= max_delay_s, was {base_delay_s}, {max_delay_s}")
        self.notifiers = {n.name: n for n in notifiers}
        if len(self.notifiers) != len(notifiers):
            raise ValueError(f"notifier names must be distinct, was {[n.name for n in notifiers]}")
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._clock = clock
        self._cond = threading.Condition()
        self._all: dict[tuple[str, str], Delivery] = {}
        self._queues: dict[str, list[tuple[float, int, tuple[str, str]]]] = {n: [] for n in self.notifiers}
        self._changed: dict[tuple[str, str], None] = {}
        self._seq = 0
        self._in_flight = 0
        self._sending: set[tuple[str, str]] = set()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, args=(name,), name=f"alerts-{name}", daemon=True)
                         for name in self.notifiers]
        for t in self._threads:
            t.start()

    def backoff_s(self, attempt: int) -> float:
        """Delay before retrying after failed attempt number ``attempt`` (1-based); any
        number of attempts (the doubling stops at 2**64, long past every cap).

        Examples
        --------
        >>> box = Outbox([], base_delay_s=0.5, max_delay_s=30.0)
        >>> [box.backoff_s(a) for a in (1, 2, 3, 8, 5000)]
        [0.5, 1.0, 2.0, 30.0, 30.0]
        >>> box.close()
        """
        return min(self.base_delay_s * 2.0 ** min(attempt - 1, 64), self.max_delay_s)

    def submit(self, alerts: Iterable[Alert]) -> list[Delivery]:
        """Queue alerts for every notifier; returns at once. Re-submitting an id is a no-op."""
        made = []
        with self._cond:
            for alert in alerts:
                for name in self.notifiers:
                    key = (alert.alert_id, name)
                    if key in self._all:
                        continue
                    d = Delivery(alert, name, next_at=self._clock())
                    self._all[key] = d
                    self._changed[key] = None
                    self._push(name, d)
                    made.append(replace(d))
            self._cond.notify_all()
        return made

    def restore(self, deliveries: Iterable[Delivery]) -> list[Delivery]:
        """Take back deliveries saved by an earlier outbox (after a restart); returns at once.

        A ``pending`` delivery is queued for its next attempt now (the restart took longer
        than any backoff), keeping its ``attempts``, ``last_error`` and ``ts_created``: it
        continues where it stopped and is ``failed`` once ``attempts`` reaches
        ``max_attempts`` (it gets at least one more attempt). A ``sent`` or ``failed``
        delivery is only listed, so it is not sent again (`retry_failed` re-queues a failed
        one) and a later `submit` of its alert is a no-op. A delivery whose (alert id,
        notifier) the outbox already holds is skipped: what this process knows wins.
        Restoring is not a status change, so `changes` does not report it. ``delays_s``
        counts this process's backoffs only.

        Parameters
        ----------
        deliveries
            Saved deliveries, oldest first; each must name a notifier of this outbox.

        Returns
        -------
        list of Delivery
            Copies of the deliveries taken back (skipped ones are left out).

        Raises
        ------
        ValueError
            If a delivery names a notifier this outbox does not have, or has a status other
            than pending, sent or failed (nothing is restored then).

        Examples
        --------
        >>> from tickwise.alerts.notifiers import MemoryNotifier
        >>> from tickwise.alerts.rules import Alert
        >>> sink = MemoryNotifier()
        >>> box = Outbox([sink], max_attempts=5, base_delay_s=0.01)
        >>> saved = [Delivery(Alert("a1", "r", {"symbol": "X"}), "memory", attempts=3, last_error="503"),
        ...          Delivery(Alert("a2", "r", {"symbol": "Y"}), "memory", status="sent", attempts=1)]
        >>> len(box.restore(saved))
        2
        >>> box.flush(timeout_s=5)
        True
        >>> [(d.alert.alert_id, d.status, d.attempts) for d in box.deliveries()], len(sink.sent)
        ([('a1', 'sent', 4), ('a2', 'sent', 1)], 1)
        >>> box.close()
        """
        saved = list(deliveries)
        for d in saved:
            if d.notifier not in self.notifiers:
                raise ValueError(f"delivery notifier must be one of {sorted(self.notifiers)}, was {d.notifier!r}")
            if d.status not in ("pending", "sent", "failed"):
                raise ValueError(f"delivery status must be pending, sent or failed, was {d.status!r}")
        made = []
        with self._cond:
            for d in saved:
                key = (d.alert.alert_id, d.notifier)
                if key in self._all:
                    continue
                d = replace(d, delays_s=[], next_at=self._clock())
                self._all[key] = d
                if d.status == "pending":
                    self._push(d.notifier, d)
                made.append(replace(d, delays_s=[]))
            self._cond.notify_all()
        return made

    def _push(self, name: str, d: Delivery) -> None:
        self._seq += 1
        heapq.heappush(self._queues[name], (d.next_at, self._seq, (d.alert.alert_id, name)))

    def _work(self, name: str) -> None:
        notifier = self.notifiers[name]
        queue = self._queues[name]
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    if queue and queue[0][0] <= self._clock():
                        _, _, key = heapq.heappop(queue)
                        d = self._all.get(key)  # None: handed over (`hand_over`)
                        if d is None or d.status != "pending":
                            continue
                        self._in_flight += 1
                        self._sending.add(key)
                        break
                    wait = max(queue[0][0] - self._clock(), 0.001) if queue else None
                    self._cond.wait(timeout=wait)
            error = ""
            try:
                notifier.send(d.alert.payload())
            except NotifierError as exc:
                error = str(exc)
            except Exception as exc:  # a notifier's bug is a failed attempt, never the end of its thread
                error = f"{type(exc).__name__}: {exc}"
                log.warning("notifier %s raised %s; the delivery is retried like any failed one", name, error,
                            exc_info=True)
            with self._cond:
                self._in_flight -= 1
                self._sending.discard((d.alert.alert_id, name))
                d.attempts += 1
                d.ts_updated = time.time_ns()
                if not error:
                    d.status = "sent"
                    d.last_error = ""
                else:
                    d.last_error = error
                    if d.attempts >= self.max_attempts:
                        d.status = "failed"
                    else:
                        delay = self.backoff_s(d.attempts)
                        d.delays_s.append(delay)
                        d.next_at = self._clock() + delay
                        self._push(name, d)
                self._changed[(d.alert.alert_id, name)] = None
                self._cond.notify_all()

    def hand_over(self, keep: Callable[[Delivery], bool]) -> int:
        """Stop delivering the pending deliveries ``keep`` rejects (another worker owns their
        symbols now and resends them from the ``alerts`` table); one being sent right now
        finishes and reports its outcome. A handed-over delivery's status change not yet
        taken by `changes` is dropped with it: the table keeps the attempt count last written,
        and the new owner continues from that. Returns how many were handed over.

        Examples
        --------
        >>> from tickwise.alerts.notifiers import MemoryNotifier
        >>> from tickwise.alerts.rules import Alert
        >>> box = Outbox([MemoryNotifier(fail_first=10**9)], base_delay_s=0.01)
        >>> _ = box.submit([Alert("a1", "r", {"symbol": "X"}), Alert("a2", "r", {"symbol": "Y"})])
        >>> box.hand_over(lambda d: d.alert.anomaly["symbol"] == "Y")
        1
        >>> [d.alert.alert_id for d in box.pending()]
        ['a2']
        >>> box.close()
        """
        with self._cond:
            gone = [k for k, d in self._all.items()
                    if d.status == "pending" and k not in self._sending and not keep(d)]
            for k in gone:
                del self._all[k]
                self._changed.pop(k, None)
            self._cond.notify_all()
        return len(gone)

    def changes(self) -> list[Delivery]:
        """Copies of the deliveries whose status changed since the last call."""
        with self._cond:
            out = [replace(self._all[k], delays_s=list(self._all[k].delays_s)) for k in self._changed]
            self._changed.clear()
        return out

    def deliveries(self) -> list[Delivery]:
        """Copies of every delivery, oldest first."""
        with self._cond:
            return [replace(d, delays_s=list(d.delays_s)) for d in self._all.values()]

    def pending(self) -> list[Delivery]:
        return [d for d in self.deliveries() if d.status == "pending"]

    def failed(self) -> list[Delivery]:
        return [d for d in self.deliveries() if d.status == "failed"]

    def retry_failed(self) -> int:
        """Put failed deliveries back in the queue with a fresh attempt budget."""
        with self._cond:
            n = 0
            for key, d in self._all.items():
                if d.status == "failed":
                    d.status, d.attempts, d.next_at = "pending", 0, self._clock()
                    self._changed[key] = None
                    self._push(d.notifier, d)
                    n += 1
            self._cond.notify_all()
        return n

    def flush(self, *, timeout_s: float = 10.0) -> bool:
        """Wait until nothing is pending; False if the timeout came first."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while any(d.status == "pending" for d in self._all.values()) or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(timeout=min(left, 0.05))
        return True

    def close(self, *, timeout_s: float = 5.0) -> None:
        """Stop the workers (undelivered alerts stay listed as pending)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=timeout_s)
