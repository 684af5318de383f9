"""Probe what limits the classifier at 6-10 sigma on the held-out series: its training data?

Each variant trains the classifier (one ensemble, ``Training(seed=--training-seed)``) on other
bars, then scores the four held-out series of ../shared/data with anomalies injected as
`tickwise evaluate-anomaly` injects them (all kinds mixed, 1 event per 100 bars from bar 800,
6-10 robust sigma, injection seeds 7-11), and prints F1 at the detector's adaptive threshold
and at the best single log-odds threshold chosen after the fact (an oracle: the ranking's
quality, with the threshold out of the question). Research, not a product setting:

- ``shipped``: the shipped bokeh bars (the product);
- ``loo``: the shipped bars plus the *other three* held-out series (more kinds of series);
- ``past``: the shipped bars plus the scored series' own first half, counted on its second
  half only (compare ``shipped --halves``);
- ``indomain``: the four held-out series themselves, the scored bars included (an upper
  bound no deployment has: it learns those bars' real anomalies as normal).

``--drop-expiry`` also counts the shipped model with every flag on a quarterly index-expiry
day (third Friday of March, June, September, December) and on the bar after dropped: the
upper bound of an expiry calendar. ``--training-seed eval`` trains as `evaluate-anomaly`
does (``Training(seed=k)`` for injection seed k).

    .venv/bin/python benchmarks/probe_classifier_data.py shipped [--halves] [--drop-expiry]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import polars as pl
from _report import DATA, HELD_OUT

from tickwise.anomaly import Schedule, learned, make_detector, threshold_settings
from tickwise.anomaly.evaluate import Tally, score_flags
from tickwise.anomaly.inject import inject
from tickwise.anomaly.learned import Training
from tickwise.anomaly.threshold import tail_thresholds
from tickwise.sources.files import read_bars

SEEDS = (7, 8, 9, 10, 11)
START = 800


def quarterly_expiry(bars: pl.DataFrame) -> np.ndarray:
    """Per bar: whether its trading day is a third Friday of March, June, September or December
    (New York dates for intraday bars, the stamped date for daily ones)."""
    ts = bars["ts"]
    intraday = bool((ts.dt.hour() != 0).any())
    day = ts.dt.convert_time_zone("America/New_York") if intraday else ts
    third_friday = (day.dt.weekday() == 5) & (day.dt.day() >= 15) & (day.dt.day() <= 21)
    return (third_friday & day.dt.month().is_in([3, 6, 9, 12])).to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("shipped", "loo", "past", "indomain"))
    parser.add_argument("--halves", action="store_true", help="count only each series' second half")
    parser.add_argument("--drop-expiry", action="store_true")
    parser.add_argument("--training-seed", default="5", help="an integer, or 'eval'")
    args = parser.parse_args()
    files = [DATA / f for f in HELD_OUT]
    if not all(f.exists() for f in files):
        sys.exit(f"the held-out series are not all in {DATA}")
    os.environ["TICKWISE_MODEL_CACHE"] = "off"  # variants must not fill the model cache
    series = [read_bars(f).sort("ts").with_columns(pl.lit(f"S{i}").alias("symbol")) for i, f in enumerate(files)]
    shipped = learned.training_bars()
    halves = args.halves or args.mode == "past"
    schedule = Schedule(min_train=400, refit_every=1000, max_train=5000)
    scored = []  # (series index, scores, events counted, adaptive threshold, first counted bar, expiry mask)
    for j, s in enumerate(series):
        extra = {"loo": [x for x in series if x is not s], "past": [s.head(s.height // 2)],
                 "indomain": series}.get(args.mode)
        if extra is not None:
            base = [] if args.mode == "indomain" else shipped
            learned.training_bars = lambda bars=base + extra: bars
        learned._CACHE.clear()
        learned._FITS.clear()
        first = s.height // 2 if halves else START
        expiry = quarterly_expiry(s)
        for k in SEEDS:
            bars, events = inject(s, rate=0.01, start=START, seed=k + j, magnitude=(6.0, 10.0))
            training = Training(seed=k if args.training_seed == "eval" else int(args.training_seed))
            score = make_detector("classifier", schedule=schedule, training=training).score(bars).score
            threshold = tail_thresholds(score, threshold_settings("classifier"))
            scored.append((j, score, [e for e in events if e.start >= first], threshold, first, expiry))

    def count(flag, drop: bool = False) -> tuple[Tally, dict[int, Tally]]:
        total, per = Tally("classifier", "all"), {}
        for j, score, events, threshold, first, expiry in scored:
            flags = flag(score, threshold)
            flags[:first] = False
            if drop:
                flags &= ~(expiry | np.r_[False, expiry[:-1]])
            score_flags(flags, events, total, start=first)
            score_flags(flags, events, per.setdefault(j, Tally("classifier", str(j))), start=first)
        return total, per

    def show(label: str, total: Tally, per: dict[int, Tally]) -> None:
        series_f1 = " ".join(f"{HELD_OUT[j].split('_')[0]} {t.f1:.3f}" for j, t in sorted(per.items()))
        print(f"{args.mode:9}{label:22}F1 {total.f1:.3f}  precision {total.precision:.3f}  recall {total.recall:.3f}"
              f"  false alarms {total.false_alarms:4}  events {total.events}  ({series_f1})")

    show("adaptive threshold", *count(lambda sc, thr: sc > thr))
    if args.drop_expiry:
        show("adaptive, no expiry", *count(lambda sc, thr: sc > thr, drop=True))
    best = max(np.arange(-2.0, 10.0, 0.25), key=lambda c: count(lambda sc, thr: sc > c)[0].f1)
    show(f"oracle threshold {best:.2f}", *count(lambda sc, thr: sc > best))


if __name__ == "__main__":
    main()
