"""Probe: does the cross-section (the other symbols' bars at the same time) lift the classifier?

A real market-wide day (an index-expiry Friday's volume, a crash) moves every symbol; an
injected fault moves one. This probe trains the classifier's members twice on the shipped
bokeh stocks, with the same injections and trees: once on the product's inputs, once with
five more, the median band z-scores of the *other* symbols' current bars on the same date
(return, range, volume, gap, swing; missing when no other symbol trades that day). It then
scores the held-out daily series (GOOG, MSFT, S&P 500: each the others' peers where their
dates overlap, each with its own injected events, as `evaluate-anomaly` injects them: 1 per
100 bars from bar 800, 6-10 robust sigma, injection seeds 7-11) and prints F1 at the adaptive
threshold (at several log-odds floors and ceilings) and at the best single threshold (an
oracle), per series and pooled. ``--relative`` adds the bar's own z minus the peers' median
(five more inputs: what the product reads, `tickwise.anomaly.market`); ``--alone-every=K``
trains every K-th copy without peers and also scores the series with the peers hidden (one
model for both cases; the product keeps two ensembles instead, as this showed the mixed model
losing accuracy alone). Research: the product's own figures come from `tickwise
evaluate-anomaly --cross-section on|off`.

    .venv/bin/python benchmarks/probe_classifier_peers.py [--members 4] [--training-seed 5] [--relative]
        [--alone-every=4]
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import polars as pl
from _report import DATA

from tickwise.anomaly import DIVERGENCE, threshold_settings
from tickwise.anomaly.evaluate import Tally, score_flags
from tickwise.anomaly.inject import inject
from tickwise.anomaly.learned import _BASE, Training, _inputs, bar_windows, training_bars
from tickwise.anomaly.threshold import tail_thresholds
from tickwise.anomaly.transient import TransientModel
from tickwise.sources.files import read_bars

FILES = ("goog_daily_backtesting.csv", "msft_daily_pmdarima.csv", "sp500_daily_arch.csv")
#: index of each file in evaluate-anomaly's held-out order (its injection seed is k + index)
EVAL_INDEX = (1, 2, 3)
SEEDS = (7, 8, 9, 10, 11)
FLOORS = ((3.0, 3.5), (3.5, 4.0), (4.0, 4.5), (4.5, 5.0))
RELATIVE = "--relative" in sys.argv
PEER = 2 * _BASE if RELATIVE else _BASE
ALONE_EVERY = next((int(a.split("=")[1]) for a in sys.argv if a.startswith("--alone-every=")), 0)
START = 800


def peer_features(frames: list[pl.DataFrame], windows: list[np.ndarray]) -> list[np.ndarray]:
    """Per series, per bar: the median over the other series of their current bar's band
    z-scores on the same timestamp (NaN where no other series has a bar then)."""
    dates = [f["ts"].dt.date().to_list() for f in frames]
    stamps = sorted(set().union(*dates))
    where = {t: k for k, t in enumerate(stamps)}
    grid = np.full((len(frames), len(stamps), _BASE), np.nan)
    rows = []
    for i, (d, w) in enumerate(zip(dates, windows, strict=True)):
        r = np.array([where[t] for t in d])
        grid[i, r] = w[:, -1, :_BASE]
        rows.append(r)
    out = []
    for i, r in enumerate(rows):
        others = np.delete(grid, i, axis=0)[:, r]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: no peer that day
            med = np.nanmedian(others, axis=0)
        if RELATIVE:
            med = np.column_stack([med, windows[i][:, -1, :_BASE] - med])
        out.append(np.clip(med, -50.0, 50.0))
    return out


def training(t: Training, div: TransientModel) -> tuple[np.ndarray, np.ndarray]:
    series = training_bars()
    xs, ys = [], []
    for c in range(t.copies):
        injected = [inject(s, kinds=t.kinds, rate=t.rate, start=t.warmup, magnitude=t.magnitude,
                           seed=t.seed * 1000 + 37 * i + c) for i, s in enumerate(series)]
        frames = [b for b, _ in injected]
        windows = [bar_windows([f], t.lookback)[0] for f in frames]
        peers = peer_features(frames, windows)
        if ALONE_EVERY and c % ALONE_EVERY == 0:  # some copies without peers: the model must score alone too
            peers = [np.full_like(p, np.nan) for p in peers]
        for (bars, events), w, p in zip(injected, windows, peers, strict=True):
            y = np.zeros(bars.height, dtype=np.int8)
            for e in events:
                y[e.start:min(e.end + 1, bars.height - 1) + 1] = 1
            xs.append(np.column_stack([_inputs(w, div), p])[t.warmup:])
            ys.append(y[t.warmup:])
    return np.vstack(xs), np.concatenate(ys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--training-seed", type=int, default=5)
    parser.add_argument("--relative", action="store_true", help="also the bar's own z minus the peers' median")
    parser.add_argument("--alone-every", type=int, default=0, help="every k-th training copy without peers")
    args = parser.parse_args()
    files = [DATA / f for f in FILES]
    if not all(f.exists() for f in files):
        sys.exit(f"the held-out daily series are not all in {DATA}")
    from sklearn.ensemble import HistGradientBoostingClassifier

    div = TransientModel(name="divergence", **DIVERGENCE)
    base = Training(seed=args.training_seed, members=args.members)
    fits: dict[str, list] = {"alone": [], "peers": []}
    for t in base.member_settings():
        x, y = training(t, div)
        for arm, cols in (("alone", x[:, :-PEER]), ("peers", x)):
            fits[arm].append(HistGradientBoostingClassifier(
                max_iter=t.max_iter, learning_rate=t.learning_rate, max_leaf_nodes=t.max_leaf_nodes,
                random_state=t.seed).fit(cols, y))
        print(f"member seed {t.seed}: {x.shape[0]} rows, {int(y.sum())} labelled", flush=True)

    def log_odds(models: list, x: np.ndarray) -> np.ndarray:
        out = np.zeros(x.shape[0])
        for m in models:
            p = np.clip(m.predict_proba(x)[:, 1], 1e-9, 1 - 1e-9)
            out += np.log(p) - np.log1p(-p)
        return out / len(models)

    series = [read_bars(f).sort("ts") for f in files]
    if ALONE_EVERY:
        fits["hidden"] = fits["peers"]
    scored = {arm: [] for arm in fits}
    for k in SEEDS:
        injected = [inject(s, rate=0.01, start=START, seed=k + j, magnitude=(6.0, 10.0))
                    for s, j in zip(series, EVAL_INDEX, strict=True)]
        frames = [b for b, _ in injected]
        windows = [bar_windows([f], 3)[0] for f in frames]
        peers = peer_features(frames, windows)
        for j, ((_, events), w, p) in enumerate(zip(injected, windows, peers, strict=True)):
            x = np.column_stack([_inputs(w, div), p])
            for arm, models in fits.items():
                xa = {"peers": x, "alone": x[:, :-PEER],
                      "hidden": np.column_stack([x[:, :-PEER], np.full((x.shape[0], PEER), np.nan)])}[arm]
                score = log_odds(models, xa)
                thr = {fc: tail_thresholds(score, threshold_settings("classifier", floor=fc[0], ceiling=fc[1]))
                       for fc in FLOORS}
                scored[arm].append((j, score, thr, [e for e in events if e.start >= START],
                                    float(np.mean(np.isfinite(p[START:, 0])))))

    for arm, rows in scored.items():
        def count(flag, rows=rows, arm=arm) -> tuple[Tally, dict[int, Tally]]:
            total, per = Tally(arm, "all"), {}
            for j, score, thr, events, _ in rows:
                flags = flag(score, thr)
                flags[:START] = False
                score_flags(flags, events, total, start=START)
                score_flags(flags, events, per.setdefault(j, Tally(arm, str(j))), start=START)
            return total, per

        def show(label: str, total: Tally, per: dict[int, Tally], arm=arm) -> None:
            by = " ".join(f"{FILES[j].split('_')[0]} {t.f1:.3f} ({t.false_alarms} fa)" for j, t in sorted(per.items()))
            print(f"{arm:6} {label:20} F1 {total.f1:.3f}  precision {total.precision:.3f}  recall {total.recall:.3f}"
                  f"  false alarms {total.false_alarms:4}  events {total.events}  ({by})")

        for fc in FLOORS:
            show(f"adaptive {fc[0]}-{fc[1]}", *count(lambda sc, thr, fc=fc: sc > thr[fc]))
        best = max(np.arange(-2.0, 10.0, 0.25), key=lambda c: count(lambda sc, thr, c=c: sc > c)[0].f1)
        show(f"oracle {best:.2f}", *count(lambda sc, thr, best=best: sc > best))
    cover = {FILES[j].split("_")[0]: round(c, 2) for j, _, _, _, c in scored["peers"][:3]}
    print(f"share of counted bars with a peer: {cover}")


if __name__ == "__main__":
    main()
