"""Leave-one-stock-out accuracy of the classifier detector on its own training stocks.

The classifier is trained on anomalies injected into the shipped bokeh bars (AAPL, GOOG,
IBM, MSFT daily). To measure it on those stocks, each one is scored by a model trained on
the other three (new injection seeds), all kinds mixed, counted as `tickwise evaluate-anomaly`
counts, once per injection seed (the default 7 is `evaluate-anomaly`'s; more seeds give a
steadier figure). This is how its inputs and its threshold (`THRESHOLD_OPTIONS["classifier"]`)
were chosen.

    .venv/bin/python benchmarks/eval_classifier_cv.py [--magnitude 6,10] [--seeds 7,8,9,10,11]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tickwise.anomaly.evaluate import Tally, evaluate
from tickwise.anomaly.learned import Training, training_bars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--magnitude", default="6,10")
    parser.add_argument("--seeds", default="7", help="Comma-separated injection seeds")
    parser.add_argument("--json", type=Path, default=Path("artifacts/anomaly/eval_classifier_cv.json"))
    args = parser.parse_args()
    lo, hi = (float(v) for v in args.magnitude.split(","))
    seeds = [int(v) for v in args.seeds.split(",")]
    rows = []
    for series in training_bars():
        symbol = str(series["symbol"][0])
        for seed in seeds:
            report = evaluate([series], detectors=["classifier"], magnitude=(lo, hi), per_kind=False, seed=seed,
                              options={"classifier": {"training": Training(exclude=(symbol,))}})
            rows.append({"held_out": symbol, "seed": seed, **report.rows[0]})
    total = Tally("classifier", "all", events=sum(int(r["events"]) for r in rows),
                  detected=sum(int(r["detected"]) for r in rows),
                  false_alarms=sum(int(r["false_alarms"]) for r in rows))
    events, detected, false_alarms = total.events, total.detected, total.false_alarms
    precision, recall, f1 = total.precision, total.recall, total.f1
    print(f"{'held out':10}{'seed':>6}{'events':>8}{'detected':>10}{'false alarms':>14}{'F1':>8}")
    for r in rows:
        print(f"{r['held_out']:10}{r['seed']:>6}{r['events']:>8}{r['detected']:>10}{r['false_alarms']:>14}{r['f1']:>8.3f}")
    print(f"{'all':16}{events:>8}{detected:>10}{false_alarms:>14}{f1:>8.3f}   precision {precision:.3f} recall {recall:.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "magnitude_sigma": [lo, hi], "seeds": seeds, "f1": round(f1, 4),
                                     "precision": round(precision, 4), "recall": round(recall, 4)}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
