"""Measure detectors on real series with injected, labelled anomalies.

For each detector and each anomaly kind (each kind alone, then all kinds mixed), every
series gets anomalies injected at ``rate`` events per bar after row ``start`` (the first
rows warm up bands, models and thresholds; alarms there are not counted). Each series is
then scored walk-forward (the batch form of the streaming detector: models trained only on
the past) and thresholded adaptively (`tickwise.anomaly.threshold`).

Counting is by event: an event counts as detected when at least one bar from its first bar
to ``tolerance`` bars after its last is flagged; the delay is the bars from its start to
the first flag. Every flagged bar outside all event windows is one false alarm (real data
has real anomalies, so those count against the detector too).
precision = detected / (detected + false alarms), recall = detected / events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from tickwise.anomaly import Schedule, make_detector, season_for, threshold_settings
from tickwise.anomaly.inject import KINDS, Event, inject
from tickwise.anomaly.market import score_together
from tickwise.anomaly.threshold import tail_thresholds

#: Bars of a series before the first injected event (the detectors' warm-up), and the fewest
#: bars after them for a series to be evaluated at all (shorter series are left out).
WARMUP = 800
SCORED = 300


@dataclass(slots=True)
class Tally:
    """Counts for one (detector, kind) cell."""

    detector: str
    kind: str
    events: int = 0
    detected: int = 0
    false_alarms: int = 0
    bars: int = 0
    delays: list[int] = field(default_factory=list)

    @property
    def precision(self) -> float:
        d = self.detected + self.false_alarms
        return self.detected / d if d else 0.0

    @property
    def recall(self) -> float:
        return self.detected / self.events if self.events else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def row(self) -> dict[str, object]:
        return {
            "detector": self.detector, "kind": self.kind, "events": self.events,
            "detected": self.detected, "false_alarms": self.false_alarms,
            "precision": round(self.precision, 4), "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "mean_delay_bars": round(float(np.mean(self.delays)), 3) if self.delays else None,
            "false_alarms_per_1000_bars": round(1000 * self.false_alarms / self.bars, 3) if self.bars else 0.0,
        }


def score_flags(flags: np.ndarray, events: Sequence[Event], tally: Tally, *, start: int,
                tolerance: int = 1) -> None:
    """Add one series' flags (bool per bar) and its events to a tally.

    Examples
    --------
    >>> t = Tally("d", "k")
    >>> flags = np.zeros(50, bool); flags[[10, 30]] = True
    >>> score_flags(flags, [Event("volume_burst", 10, 10, 8.0)], t, start=0)
    >>> t.detected, t.false_alarms, round(t.precision, 2)
    (1, 1, 0.5)
    """
    n = flags.shape[0]
    in_event = event_mask(events, n, tolerance)
    for e in events:
        lo, hi = e.start, min(e.end + tolerance, n - 1)
        hits = np.flatnonzero(flags[lo:hi + 1])
        tally.events += 1
        if hits.size:
            tally.detected += 1
            tally.delays.append(int(hits[0]))
    tally.false_alarms += int(np.sum(flags[start:] & ~in_event[start:]))
    tally.bars += n - start


def event_mask(events: Sequence[Event], n: int, tolerance: int) -> np.ndarray:
    """Per bar of ``n``: whether it lies in an event's window (its first bar to ``tolerance``
    bars after its last), where a flag counts as a detection rather than a false alarm."""
    in_event = np.zeros(n, dtype=bool)
    for e in events:
        in_event[e.start:min(e.end + tolerance, n - 1) + 1] = True
    return in_event


def _false_alarms(det: object, scored: object, thresholds: np.ndarray, flags: np.ndarray,
                  events: Sequence[Event], bars: pl.DataFrame, tolerance: int, *, detector: str, run: str,
                  seed: int) -> list[dict[str, object]]:
    in_event = event_mask(events, flags.shape[0], tolerance)
    symbol = bars["symbol"] if "symbol" in bars.columns else None
    ts = bars["ts"] if "ts" in bars.columns else None
    return [{"detector": detector, "run": run, "seed": seed,
             "symbol": None if symbol is None else symbol[i], "row": i, "ts": None if ts is None else ts[i],
             "score": float(scored.score[i]), "threshold": float(thresholds[i]),  # type: ignore[attr-defined]
             "explanation": det.explain(scored, i).text}  # type: ignore[attr-defined]
            for i in np.flatnonzero(flags & ~in_event).tolist()]


def series_names(series: Sequence[pl.DataFrame]) -> list[str]:
    """A name per series for the per-series figures: its symbol (``series N`` without one),
    with ``#2``, ``#3`` for a symbol that comes again (GOOG daily of two vendors).

    Examples
    --------
    >>> series_names([pl.DataFrame({"symbol": ["GOOG"]}), pl.DataFrame({"symbol": ["GOOG"]}), pl.DataFrame({"x": [1]})])
    ['GOOG', 'GOOG#2', 'series 3']
    """
    names: list[str] = []
    for i, s in enumerate(series):
        base = str(s["symbol"][0]) if "symbol" in s.columns and s.height else f"series {i + 1}"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}#{n}"
        names.append(name)
    return names


@dataclass(slots=True)
class Report:
    """Evaluation results: one row per (detector, kind), plus the settings used."""

    rows: list[dict[str, object]]
    settings: dict[str, object]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def best(self, kind: str = "all") -> dict[str, object]:
        cands = [r for r in self.rows if r["kind"] == kind]
        return max(cands, key=lambda r: float(r["f1"]))  # type: ignore[arg-type]


def evaluate(series: Sequence[pl.DataFrame], *, detectors: Sequence[str] = ("zscore", "ewma", "iforest", "autoencoder"),
             kinds: Sequence[str] = KINDS, rate: float = 0.01, start: int = WARMUP, q: float = 1e-3,
             tolerance: int = 1, seed: int | Sequence[int] = 7, schedule: Schedule | None = None,
             magnitude: tuple[float, float] = (6.0, 10.0), mixed: bool = True,
             per_kind: bool = True, options: dict[str, dict[str, object]] | None = None,
             time_of_day: str = "auto", tz: str = "America/New_York", cross_section: bool = True,
             false_alarms: list[dict[str, object]] | None = None) -> Report:
    """Inject, score and count; see the module docstring.

    ``per_kind=False`` runs only the mixed set (all kinds together); ``options`` passes
    model options per detector (e.g. ``{"autoencoder": {"epochs": 10}}``). Several seeds
    repeat the whole measurement with other injections (series ``i`` is injected with seed
    ``s + i``) and pool the counts: one seed's F1 over about 150 events moves by a few
    hundredths with the draw. ``time_of_day``: intraday series are measured against their
    own time of day (``"auto"``, in exchange time zone ``tz``) or not (``"off"``). With
    ``cross_section`` the series of one injection seed are scored together, as one market
    (`tickwise.anomaly.market.score_together`): a detector that reads the market context
    (``classifier``) sees, for each bar, the other series' bars of the same timestamp, each
    series with its own injected events; without it every series is scored alone. Given a list
    as ``false_alarms``, every false alarm is appended to it (detector, run, seed, symbol, bar
    time, score, threshold, explanation), so the real bars counted against a detector can be
    looked at one by one.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 1500)))
    >>> bars = pl.DataFrame({"open": c, "high": c * 1.01, "low": c * 0.99, "close": c,
    ...                      "volume": rng.lognormal(10, 0.3, 1500)})
    >>> r = evaluate([bars], detectors=["zscore"], kinds=["volume_burst"], mixed=False)
    >>> r.rows[0]["recall"] > 0.8
    True
    """
    schedule = schedule or Schedule(min_train=400, refit_every=1000, max_train=5000)
    options = options or {}
    seeds = [seed] if isinstance(seed, int) else list(seed)
    if not seeds:
        raise ValueError("at least one seed is needed, was none")
    runs = ([[k] for k in kinds] if per_kind or len(kinds) == 1 else []) + \
        ([list(kinds)] if mixed and len(kinds) > 1 else [])
    rows: list[dict[str, object]] = []
    # (index among all series, which seeds its injections, and the series) of those long enough
    scored_series = [(i, s) for i, s in enumerate(series) if s.height >= start + SCORED]
    names = series_names([s for _, s in scored_series])
    for run in runs:
        label = run[0] if len(run) == 1 else "all"
        injected = [(k, *inject(s, kinds=run, rate=rate, start=start, seed=k + i, magnitude=magnitude), n)
                    for k in seeds for (i, s), n in zip(scored_series, names, strict=True)]
        for name in detectors:
            tally = Tally(name, label)
            by_seed = {k: Tally(name, label) for k in seeds}
            by_series = {n: Tally(name, label) for n in names}
            dets = []
            for k, bars, _, _ in injected:
                season = season_for(bars["ts"] if "ts" in bars.columns else None, time_of_day, tz=tz)
                dets.append(make_detector(name, schedule=schedule, seed=k, seasonality=season, **options.get(name, {})))
            results = []
            for k in seeds:  # the series of one injection seed are one market: scored together
                mine = [i for i, (seed_i, *_) in enumerate(injected) if seed_i == k]
                if cross_section:
                    results += zip(mine, score_together([dets[i] for i in mine], [injected[i][1] for i in mine]),
                                   strict=True)
                else:
                    results += [(i, dets[i].score(injected[i][1])) for i in mine]
            for i, scored in sorted(results, key=lambda r: r[0]):
                (k, bars, events, series_name), det = injected[i], dets[i]
                scores = scored.score
                thresholds = tail_thresholds(scores, threshold_settings(name, q=q))
                flags = scores > thresholds
                flags[:start] = False
                for t in (tally, by_seed[k], by_series[series_name]):
                    score_flags(flags, events, t, start=start, tolerance=tolerance)
                if false_alarms is not None:
                    false_alarms.extend(_false_alarms(det, scored, thresholds, flags, events, bars, tolerance,
                                                      detector=name, run=label, seed=k))
            row = tally.row()
            if len(seeds) > 1:
                row["f1_by_seed"] = {str(k): round(t.f1, 4) for k, t in by_seed.items()}
            if len(names) > 1:
                row["f1_by_series"] = {n: round(t.f1, 4) for n, t in by_series.items()}
            rows.append(row)
    settings = {"rate": rate, "start": start, "q": q, "tolerance": tolerance,
                "seed": seeds[0] if len(seeds) == 1 else seeds,
                "series": len(scored_series), "kinds": list(kinds), "magnitude_sigma": list(magnitude),
                "options": options, "time_of_day": time_of_day, "tz": tz, "cross_section": cross_section}
    return Report(rows, settings)
