"""Anomaly detection speed: scoring cost per closed bar for many symbols, and training time.

For each detector, 500 symbols get one closed bar per step through `MultiSymbolDetector`
(features, bands, model, adaptive threshold, learn), timed without and with the
explanations of the anomalies found (SHAP for the Isolation Forest is the costly part);
the table shows milliseconds per step (all 500 bars together) and per explanation. Training: a `Detector.fit`
over a 100k-bar series (features + model fit on every window). Prints a table and writes
artifacts/benchmarks/bench_anomaly.json. ``--quick`` uses fewer steps and 20k bars.
``--time-of-day`` also times the band detectors with the intraday time-of-day profile
(`tickwise.anomaly.seasonal`) live: ten slots of the day that repeat, so every slot has its
ten past bars when timing starts. The symbols of a step share their bar time, so the classifier
scores them with its market-context ensemble; ``--alone`` also times it with no symbol having a
peer (its first ensemble). ``--catch-up STEPS`` times the classifier's first step after STEPS
steps it could not score (its first fit in the background), which scores the bars held meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from tickwise.anomaly import (
    Schedule,
    Seasonality,
    make_bands,
    make_detector,
    make_model,
    threshold_settings,
)
from tickwise.anomaly.multi import MultiSymbolDetector

DETECTORS = ("zscore", "ewma", "transient", "divergence", "classifier", "iforest", "autoencoder", "stale")


def synthetic_bars(n_steps: int, n_symbols: int, seed: int = 0, *, flat: float = 0.0) -> dict[str, np.ndarray]:
    """Bars of a random walk; ``flat``: the share of bars that print one price, the last close
    (in runs: a flat bar is followed by another with probability 0.5), for `stale`'s run counting."""
    rng = np.random.default_rng(seed)
    ret = rng.standard_t(4, (n_steps, n_symbols)) * 0.002
    still = np.zeros((n_steps, n_symbols), dtype=bool)
    if flat > 0:
        start = flat * 0.5 / (1 - flat)  # the chain's stationary flat share is `flat`
        draws = rng.random((n_steps, n_symbols))
        for t in range(1, n_steps):
            still[t] = draws[t] < np.where(still[t - 1], 0.5, start)
    ret[still] = 0.0
    close = 100 * np.exp(np.cumsum(ret, axis=0))
    open_ = np.vstack([close[:1], close[:-1]])
    spread = np.where(still, 0.0, np.abs(rng.normal(0, 0.002, (n_steps, n_symbols))))
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    volume = rng.lognormal(8, 0.4, (n_steps, n_symbols))
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def bench_step(name: str, *, n_symbols: int, warm: int, steps: int, explain: bool,
               time_of_day: bool = False, alone: bool = False) -> dict[str, float]:
    if name == "classifier":  # both ensembles fitted (or loaded) first: the live step does not wait for a fit
        from tickwise.anomaly.learned import Training, trained

        trained(Training())
        trained(Training(market=True))
    # stale: a fifth of the bars flat, in runs, so its windows have runs to count and sort
    bars = synthetic_bars(warm + steps, n_symbols, flat=0.2 if name == "stale" else 0.0)
    symbols = [f"S{i:04d}" for i in range(n_symbols)]
    det = MultiSymbolDetector(make_model(name), bands=make_bands(name),
                              schedule=Schedule(min_train=5000, refit_every=None, max_train=20000),
                              thresholds=threshold_settings(name),
                              seasonality=Seasonality() if time_of_day else None)
    times = []
    found = 0
    day0 = 1_700_000_000 * 10**9 // 86_400_000_000_000 * 86_400_000_000_000 + (14 * 60 + 30) * 60 * 10**9
    for t in range(warm + steps):
        fields = {k: v[t] for k, v in bars.items()}
        # ten one-minute slots a day from 9:30 New York (14:30 UTC in winter), then the next day
        ts = np.full(n_symbols, day0 + (t // 10) * 86_400 * 10**9 + (t % 10) * 60 * 10**9, dtype=np.int64)
        if alone:  # each symbol's bar a nanosecond apart: no symbol has a peer (no market context)
            ts = ts + np.arange(n_symbols)
        t0 = time.perf_counter()
        res = det.step(symbols, fields, explain=explain, ts=ts if time_of_day or alone else None)
        dt = time.perf_counter() - t0
        if t >= warm:
            times.append(dt * 1000)
            found += int(res.is_anomaly.sum())
    probe = np.asarray(det._windows[:1])  # one window: what explaining one anomaly costs
    t0 = time.perf_counter()
    for _ in range(10):
        det.model.attribute(probe)
    explain_ms = (time.perf_counter() - t0) * 100
    return {"detector": name + (" +time of day" if time_of_day else "") + (" alone" if alone else ""),
            "symbols": n_symbols, "steps": steps,
            "explain": explain,
            "ms_per_anomaly_explained": round(explain_ms, 3),
            "ms_per_step_median": round(statistics.median(times), 3),
            "ms_per_step_p95": round(float(np.percentile(times, 95)), 3),
            "us_per_bar": round(1000 * statistics.median(times) / n_symbols, 3),
            "anomalies": found, "fits": det.fits}


def bench_catch_up(*, n_symbols: int, held_steps: int) -> dict[str, float]:
    """The classifier cannot score for ``held_steps`` steps (its first fit in the background):
    the time of the first step that can, which scores every bar held meanwhile, explains their
    anomalies and then its own bars."""
    from tickwise.anomaly.learned import ClassifierModel, Training, trained

    trained(Training())
    trained(Training(market=True))
    bars = synthetic_bars(held_steps + 1, n_symbols, seed=2)
    symbols = [f"S{i:04d}" for i in range(n_symbols)]
    det = MultiSymbolDetector(make_model("classifier"), bands=make_bands("classifier"),
                              thresholds=threshold_settings("classifier"))
    ready = {"now": False}
    with mock.patch.object(ClassifierModel, "ready_for", lambda self, context: ready["now"]):
        for t in range(held_steps):
            det.step(symbols, {k: v[t] for k, v in bars.items()})
        held = det._held_rows
        ready["now"] = True
        t0 = time.perf_counter()
        res = det.step(symbols, {k: v[held_steps] for k, v in bars.items()})
        took = time.perf_counter() - t0
    return {"held_steps": held_steps, "held_bars": held, "catch_up_step_s": round(took, 3),
            "late_anomalies": len(res.late), "us_per_held_bar": round(1e6 * took / max(held, 1), 2)}


def bench_train(name: str, *, n_bars: int) -> dict[str, float]:
    bars = {k: v[:, 0] for k, v in synthetic_bars(n_bars, 1, seed=1).items()}
    det = make_detector(name, schedule=Schedule(min_train=100, refit_every=None, max_train=n_bars))
    t0 = time.perf_counter()
    if name == "classifier":
        # its training is on the shipped bars with injected anomalies, not on the stream
        from tickwise.anomaly import learned, modelcache

        learned._CACHE.clear()
        learned._FITS.clear()
        with mock.patch.dict(os.environ, {modelcache.ENV: "off"}):  # a cold fit, not a load from the on-disk cache
            learned.trained(learned.Training())
            alone_s = time.perf_counter() - t0
            learned.trained(learned.Training(market=True))  # the ensemble for bars with a market context
    else:
        det.fit(bars)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    det.features(bars)
    feat_s = time.perf_counter() - t0
    out = {"detector": name, "bars": n_bars, "fit_s": round(fit_s, 3), "feature_pass_s": round(feat_s, 3)}
    if name == "classifier":  # both ensembles; the shipped bars (about 200k windows per member), not n_bars
        out.update(bars=None, alone_fit_s=round(alone_s, 3), market_fit_s=round(fit_s - alone_s, 3))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, 20k training bars")
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--time-of-day", action="store_true", help="also time the band detectors with the profile")
    parser.add_argument("--alone", action="store_true",
                        help="also time the classifier with every symbol alone (no market context: its first ensemble)")
    parser.add_argument("--catch-up", type=int, default=0, metavar="STEPS",
                        help="also time the classifier's first step after STEPS steps it could not score")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = [d for d in args.detectors.split(",") if d]
    # 230 warm-up steps: bands (20) and thresholds (200 scores) are live when timing starts
    warm, steps = (230, 30) if args.quick else (240, 200)
    n_bars = 20_000 if args.quick else 100_000
    scoring = [bench_step(n, n_symbols=args.symbols, warm=warm, steps=steps, explain=e)
               for n in names for e in (False, True)]
    if args.alone:
        scoring += [bench_step(n, n_symbols=args.symbols, warm=warm, steps=steps, explain=True, alone=True)
                    for n in names if n == "classifier"]
    if args.time_of_day:
        scoring += [bench_step(n, n_symbols=args.symbols, warm=warm, steps=steps, explain=True, time_of_day=True)
                    for n in names if n in ("zscore", "ewma", "transient", "divergence")]
    catch_up = bench_catch_up(n_symbols=args.symbols, held_steps=args.catch_up) if args.catch_up else None
    training = [bench_train(n, n_bars=n_bars) for n in names]
    print(f"scoring one closed bar for each of {args.symbols} symbols (one vectorised step)")
    print(f"{'detector':<12} {'explain':>8} {'ms/step p50':>12} {'ms/step p95':>12} {'us/bar':>8} "
          f"{'anomalies':>10} {'ms/explanation':>15} {'goal':>6}")
    for r in scoring:
        goal = "5 ms" if str(r["detector"]).split()[0] in ("zscore", "ewma", "transient", "divergence", "stale") else "50 ms"
        print(f"{r['detector']:<12} {r['explain']!s:>8} {r['ms_per_step_median']:>12} {r['ms_per_step_p95']:>12} "
              f"{r['us_per_bar']:>8} {r['anomalies']:>10} {r['ms_per_anomaly_explained']:>15} {goal:>6}")
    if catch_up:
        print(f"\nclassifier catch-up: {catch_up['held_bars']} bars held over {catch_up['held_steps']} steps scored "
              f"by the next step in {catch_up['catch_up_step_s']} s ({catch_up['us_per_held_bar']} us per held bar, "
              f"{catch_up['late_anomalies']} late anomalies explained)")
    print(f"\ntraining on {n_bars} bars")
    print(f"{'detector':<12} {'fit s':>8} {'feature pass s':>15}")
    for r in training:
        both = f"   (alone {r['alone_fit_s']} s + market context {r['market_fit_s']} s, on the shipped bars)" \
            if "alone_fit_s" in r else ""
        print(f"{r['detector']:<12} {r['fit_s']:>8} {r['feature_pass_s']:>15}{both}")
    out = Path("artifacts/benchmarks/bench_anomaly.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"scoring": scoring, "training": training, "catch_up": catch_up, "quick": args.quick},
                              indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
