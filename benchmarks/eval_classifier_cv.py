"""Leave-one-stock-out accuracy of the classifier detector on its own training stocks.

The classifier is trained on anomalies injected into the shipped bokeh bars (AAPL, GOOG,
IBM, MSFT daily). To measure it on those stocks, each one is scored by a model trained on
the other three (new injection seeds), all kinds mixed, counted as `tickwise evaluate-anomaly`
counts, once per injection seed (the default 7 is `evaluate-anomaly`'s; more seeds give a
steadier figure). With ``--cross-section on`` (the default) the scored stock is scored
together with the other three, each with its own injected events, as one market: the
classifier reads their bars of the same date (`tickwise.anomaly.market`); ``off`` scores it
alone. Each threshold setting of ``--thresholds`` (log-odds floor and ceiling of the adaptive
threshold) is counted on the same scores. This is how the classifier's inputs and its
threshold (`THRESHOLD_OPTIONS["classifier"]`) were chosen.

    .venv/bin/python benchmarks/eval_classifier_cv.py [--magnitude 6,10] [--seeds 7,8,9,10,11]
        [--cross-section on|off] [--thresholds 4.5:5,4:4.5] [--members 4]
        [--kinds bad_print] [--training-kinds price_spike,...,bad_print]

``--kinds``: the kinds injected into the scored stocks; ``--training-kinds``: those each fold's
classifier is trained on (both the default five unless named; `tickwise.anomaly.inject`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tickwise.anomaly import THRESHOLD_OPTIONS, make_detector, threshold_settings
from tickwise.anomaly.evaluate import Tally, score_flags
from tickwise.anomaly.inject import ALL_KINDS, KINDS, inject
from tickwise.anomaly.learned import Training, training_bars
from tickwise.anomaly.market import score_together
from tickwise.anomaly.threshold import tail_thresholds

START = 800


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--magnitude", default="6,10")
    parser.add_argument("--seeds", default="7", help="Comma-separated injection seeds")
    parser.add_argument("--cross-section", choices=("on", "off"), default="on")
    default = THRESHOLD_OPTIONS["classifier"]
    parser.add_argument("--thresholds", default=f"{default['floor']:g}:{default['ceiling']:g}",
                        help="Comma-separated FLOOR:CEILING log-odds settings to count (default: the shipped one)")
    parser.add_argument("--members", type=int, default=Training().members,
                        help="ensemble members of each fold's classifier (default: the shipped count)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="Comma-separated kinds injected into the scored stocks")
    parser.add_argument("--training-kinds", default=",".join(KINDS), help="Comma-separated kinds the folds are trained on")
    parser.add_argument("--json", type=Path, default=Path("artifacts/anomaly/eval_classifier_cv.json"))
    args = parser.parse_args()
    kinds, training_kinds = (tuple(k.strip() for k in v.split(",")) for v in (args.kinds, args.training_kinds))
    for k in (*kinds, *training_kinds):
        if k not in ALL_KINDS:
            parser.error(f"kinds must be among {', '.join(ALL_KINDS)}, was {k!r}")
    lo, hi = (float(v) for v in args.magnitude.split(","))
    seeds = [int(v) for v in args.seeds.split(",")]
    settings = [tuple(float(v) for v in s.split(":")) for s in args.thresholds.split(",")]
    stocks = training_bars()
    tallies = {s: Tally("classifier", f"{s[0]:g}:{s[1]:g}") for s in settings}
    rows = []
    for h, series in enumerate(stocks):
        symbol = str(series["symbol"][0])
        training = Training(exclude=(symbol,), members=args.members, kinds=training_kinds)
        for seed in seeds:
            injected = [inject(s, kinds=kinds, rate=0.01, start=START, seed=seed + i, magnitude=(lo, hi))
                        for i, s in enumerate(stocks)]
            if args.cross_section == "on":
                scored = score_together([make_detector("classifier", training=training) for _ in stocks],
                                        [b for b, _ in injected])[h]
            else:
                scored = make_detector("classifier", training=training).score(injected[h][0])
            events = [e for e in injected[h][1] if e.start >= START]
            for s in settings:
                thresholds = tail_thresholds(scored.score, threshold_settings("classifier", floor=s[0], ceiling=s[1]))
                flags = scored.score > thresholds
                flags[:START] = False
                one = Tally("classifier", symbol)
                score_flags(flags, events, one, start=START)
                score_flags(flags, events, tallies[s], start=START)
                rows.append({"held_out": symbol, "seed": seed, "floor": s[0], "ceiling": s[1], **one.row()})
    print(f"{args.members} members, cross-section {args.cross_section}, magnitude {lo:g}-{hi:g} sigma, seeds {args.seeds}, "
          f"kinds {','.join(kinds)}, trained on {','.join(training_kinds)}")
    print(f"{'held out':10}{'seed':>6}{'threshold':>11}{'events':>8}{'detected':>10}{'false alarms':>14}{'F1':>8}")
    for r in rows:
        print(f"{r['held_out']:10}{r['seed']:>6}{r['floor']:>6g}:{r['ceiling']:<4g}{r['events']:>8}{r['detected']:>10}"
              f"{r['false_alarms']:>14}{r['f1']:>8.3f}")
    for s, total in tallies.items():
        print(f"all {s[0]:g}:{s[1]:g}{'':8}{total.events:>8}{total.detected:>10}{total.false_alarms:>14}{total.f1:>8.3f}"
              f"   precision {total.precision:.3f} recall {total.recall:.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "rows": rows, "magnitude_sigma": [lo, hi], "seeds": seeds, "cross_section": args.cross_section,
        "kinds": list(kinds), "training_kinds": list(training_kinds),
        "members": args.members,
        "totals": [{"floor": s[0], "ceiling": s[1], "f1": round(t.f1, 4), "precision": round(t.precision, 4),
                    "recall": round(t.recall, 4)} for s, t in tallies.items()]}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
