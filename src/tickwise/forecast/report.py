"""A self-contained HTML report of a walk-forward evaluation (plotly inlined, works offline)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from tickwise.forecast.evaluate import SCORE_KEYS, WalkForward


def render_report(wf: WalkForward, *, title: str, timestamps: Sequence[str] | None = None, last: int = 200) -> str:
    """Return an HTML page: the scores table, forecasts against actual closes, errors.

    Examples
    --------
    >>> from tickwise.forecast.baselines import Naive
    >>> from tickwise.forecast.evaluate import walk_forward
    >>> y = 100 + np.cumsum(np.random.default_rng(0).normal(size=60))
    >>> page = render_report(walk_forward(y, {"naive": Naive}, origins=10), title="demo")
    >>> "<table" in page and "plotly" in page
    True
    """
    import plotly.graph_objects as go

    scores = wf.scores()
    best = min(scores, key=lambda m: scores[m]["mae"])
    x = list(timestamps[-len(wf.actual):]) if timestamps is not None else wf.origins.tolist()
    tail = slice(max(0, len(x) - last), len(x))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x[tail], y=wf.actual[tail], name="actual close", line={"color": "black"}))
    for name, run in wf.runs.items():
        fig.add_trace(go.Scatter(x=x[tail], y=run.mean[tail], name=f"{name} forecast", mode="lines"))
        fig.add_trace(go.Scatter(x=x[tail] + x[tail][::-1],
                                 y=np.concatenate([run.hi[95][tail], run.lo[95][tail][::-1]]),
                                 fill="toself", opacity=0.15, line={"width": 0}, name=f"{name} 95%",
                                 showlegend=True, hoverinfo="skip"))
    fig.update_layout(title=f"one-step forecasts, last {len(x[tail])} origins", height=480)
    err = go.Figure()
    for name, run in wf.runs.items():
        err.add_trace(go.Box(y=np.abs(run.mean - wf.actual), name=name, boxpoints=False))
    err.update_layout(title="absolute error per origin", height=380)
    bars = go.Figure(go.Bar(x=list(scores), y=[s["mase"] for s in scores.values()]))
    bars.add_hline(y=scores["naive"]["mase"] if "naive" in scores else 1.0, line_dash="dash")
    bars.update_layout(title="MASE (dashed: random walk)", height=340)

    head = "".join(f"<th>{k}</th>" for k in ("model", *SCORE_KEYS))
    body = "".join(
        "<tr>" + f"<td>{html.escape(name)}{' (best MAE)' if name == best else ''}</td>"
        + "".join(f"<td>{s[k]:.4g}</td>" for k in SCORE_KEYS) + "</tr>" for name, s in scores.items())
    verdict = ""
    if "naive" in scores:
        vs = wf.versus("naive")
        beat = [m for m in vs if m != "naive" and vs[m]["mae_ratio"] < 1 and vs[m]["dm_p_value"] < 0.05]
        rows = "".join(f"<tr><td>{html.escape(m)}</td><td>{v['mae_ratio']:.4f}</td><td>{v['dm_p_value']:.3g}</td></tr>"
                       for m, v in vs.items())
        verdict = (f"<h2>Against the random walk</h2><table><tr><th>model</th><th>MAE / naive MAE</th>"
                   f"<th>Diebold-Mariano p</th></tr>{rows}</table>"
                   + (f"<p>Beat the random walk (lower MAE, p &lt; 0.05): {html.escape(', '.join(beat))}.</p>" if beat
                      else "<p><b>The random walk wins:</b> no model beats it with p &lt; 0.05.</p>"))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{len(wf.actual)} one-step forecasts, rolling origin.</p>"
        f"<table><tr>{head}</tr>{body}</table>{verdict}"
        + fig.to_html(include_plotlyjs=True, full_html=False)
        + err.to_html(include_plotlyjs=False, full_html=False)
        + bars.to_html(include_plotlyjs=False, full_html=False)
        + "</body></html>"
    )
