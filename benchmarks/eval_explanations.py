"""Do the classifier's explanations name the feature an injected anomaly perturbed?

For every injected event the classifier detects (held-out series of ../shared/data, 6-10
robust sigma, all kinds mixed), the top feature of its explanation at the first flagged bar
is compared with the features that kind perturbs, once with path attributions (Saabas;
SHAP's TreeExplainer with ``approximate=True``, what the detector uses) and once with exact
SHAP values; the time per explained bar is measured for both. Intraday series are scored
against their time of day, as `evaluate-anomaly` scores them. Prints a table per kind and
writes artifacts/anomaly/eval_explanations.json.

    .venv/bin/python benchmarks/eval_explanations.py [--seeds 11,12]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from _report import DATA, HELD_OUT

from tickwise.anomaly import make_detector, season_for, tail_thresholds, threshold_settings
from tickwise.anomaly.features import BAR_FEATURES
from tickwise.anomaly.inject import inject
from tickwise.sources.files import read_bars

#: The bar features each kind changes (a flash crash also triples volume; that counts as a miss).
PERTURBS = {"price_spike": {"return", "gap"}, "level_shift": {"gap", "return"}, "volume_burst": {"volume"},
            "flash_crash": {"swing", "range", "return"}, "frozen_price": {"range"}}
METHODS = {"path": False, "exact": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="11,12", help="Comma-separated injection seeds")
    args = parser.parse_args()
    files = [DATA / f for f in HELD_OUT if (DATA / f).exists()]
    if not files:
        sys.exit(f"the held-out series are not in {DATA}")
    events, named = Counter(), {m: Counter() for m in METHODS}
    seconds, rows = dict.fromkeys(METHODS, 0.0), 0
    for f in files:
        bars = read_bars(f).sort("ts")
        # as `evaluate-anomaly` and the live stage score them: intraday bars against their time of day
        det = make_detector("classifier", seasonality=season_for(bars["ts"]))
        model = det.model
        for seed in (int(s) for s in args.seeds.split(",")):
            injected, labelled = inject(bars, rate=0.01, start=800, seed=seed)
            scores = det.score(injected)
            flags = scores.score > tail_thresholds(scores.score, threshold_settings("classifier"))
            flags[:800] = False
            for e in labelled:
                hits = np.flatnonzero(flags[e.start:e.end + 2])
                if not hits.size:
                    continue
                window = scores.windows[e.start + hits[0]][None]
                events[e.kind] += 1
                rows += 1
                for method, exact in METHODS.items():
                    t0 = time.perf_counter()
                    contrib = model.attribute(window, exact=exact)[0]  # type: ignore[call-arg]
                    seconds[method] += time.perf_counter() - t0
                    top = BAR_FEATURES[int(np.argmax(contrib[:len(BAR_FEATURES)]))]
                    named[method][e.kind] += top in PERTURBS[e.kind]
    total = sum(events.values())
    print(f"detected events: {total} ({len(files)} held-out series, seeds {args.seeds}); "
          "share whose explanation's top feature is one the kind perturbs")
    print(f"{'kind':<14}{'events':>8}{'path':>8}{'exact':>8}")
    for kind in PERTURBS:
        n = events[kind]
        if n:
            print(f"{kind:<14}{n:>8}{named['path'][kind] / n:>8.2f}{named['exact'][kind] / n:>8.2f}")
    share = {m: sum(named[m].values()) / total for m in METHODS}
    ms = {m: 1000 * seconds[m] / rows for m in METHODS}
    print(f"{'all':<14}{total:>8}{share['path']:>8.2f}{share['exact']:>8.2f}")
    print(f"ms per explained bar: path {ms['path']:.2f}, exact {ms['exact']:.2f}")
    out = Path("artifacts/anomaly/eval_explanations.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"events": dict(events), "named": {m: dict(c) for m, c in named.items()},
                               "share": share, "ms_per_bar": ms, "seeds": args.seeds}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
