"""Plotly figures of the dashboard, built from the API's JSON rows (no I/O here).

`candle_figure` draws the candlesticks and volume of one symbol with SMA overlays, the
forecast of the next bar after the last real one with its 80%/95% interval band, the
one-step forecasts made for past bars, buy/sell markers and anomaly markers whose hover
text carries the detector's explanation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

UP = "#26a69a"
DOWN = "#ef5350"
SMA_COLORS = {9: "#f6c343", 21: "#7e57c2"}
FORECAST = "#42a5f5"
ANOMALY = "#ff9800"
BACKGROUND = "#0e1117"
GRID = "rgba(255,255,255,0.06)"

Row = dict[str, Any]


def parse_ts(value: Any) -> dt.datetime:
    """Read an API timestamp (RFC 3339 string) as an aware datetime.

    Examples
    --------
    >>> parse_ts("2024-01-02T03:04:05Z").hour
    3
    """
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def sma(values: Sequence[float], period: int) -> list[float | None]:
    """Simple moving average, None until ``period`` values exist.

    Examples
    --------
    >>> sma([1.0, 2.0, 3.0, 4.0], 2)
    [None, 1.5, 2.5, 3.5]
    """
    x = np.asarray(values, dtype=np.float64)
    out: list[float | None] = [None] * len(x)
    if len(x) >= period:
        c = np.concatenate(([0.0], np.cumsum(x)))
        means = (c[period:] - c[:-period]) / period
        out[period - 1:] = [float(m) for m in means]
    return out


def next_forecast(bars: Sequence[Row], forecasts: Sequence[Row]) -> Row | None:
    """Return the newest forecast for a bar after the last real one, if any."""
    if not bars or not forecasts:
        return None
    last = parse_ts(bars[-1]["ts"])
    ahead = [f for f in forecasts if f.get("ts") and parse_ts(f["ts"]) > last and f.get("close") is not None]
    return max(ahead, key=lambda f: parse_ts(f["ts"])) if ahead else None


def bar_step(bars: Sequence[Row]) -> dt.timedelta:
    """The usual spacing of the bars (the median gap), for placing the next one."""
    if len(bars) < 2:
        return dt.timedelta(minutes=1)
    ts = [parse_ts(b["ts"]) for b in bars[-50:]]
    gaps = sorted((b - a) for a, b in pairwise(ts) if b > a)
    return gaps[len(gaps) // 2] if gaps else dt.timedelta(minutes=1)


def gaps(bars: Sequence[Row], *, max_gaps: int = 60) -> list[dict[str, Any]]:
    """Plotly range breaks that hide market closures (gaps over 3 bar steps) between bars.

    Examples
    --------
    >>> bars = [{"ts": t} for t in ("2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z",
    ...                              "2024-01-01T12:00:00Z", "2024-01-02T09:00:00Z")]
    >>> gaps(bars)[0]["bounds"][1]
    '2024-01-02T09:00:00+00:00'
    """
    if len(bars) < 3:
        return []
    step = bar_step(bars)
    ts = [parse_ts(b["ts"]) for b in bars]
    out = []
    for a, b in pairwise(ts):
        if b - a > 3 * step:
            out.append({"bounds": [(a + step).isoformat(), b.isoformat()]})
    return out[-max_gaps:]


def candle_figure(
    bars: Sequence[Row],
    *,
    show: int | None = None,
    forecasts: Sequence[Row] = (),
    signals: Sequence[Row] = (),
    anomalies: Sequence[Row] = (),
    sma_periods: Sequence[int] = (9, 21),
    revision: str = "",
    height: int = 640,
) -> go.Figure:
    """Build the live chart of one symbol.

    Parameters
    ----------
    bars
        Bar rows oldest first (extra leading bars only warm up the SMAs).
    show
        How many of the newest bars to draw (default all).
    forecasts, signals, anomalies
        Rows of those API routes for the same symbol and timeframe.
    revision
        Plotly ``uirevision``: zoom and legend state survive updates while it is unchanged.

    Examples
    --------
    >>> bars = [{"ts": f"2024-01-0{d}T00:00:00Z", "open": 1.0, "high": 2.0, "low": 0.5,
    ...          "close": 1.5, "volume": 10.0} for d in range(1, 4)]
    >>> fig = candle_figure(bars, forecasts=[{"ts": "2024-01-04T00:00:00Z", "open": 1.5,
    ...     "high": 1.8, "low": 1.2, "close": 1.6, "lo_95": 1.0, "hi_95": 2.2}])
    >>> [t.name for t in fig.data if t.type == "candlestick"]
    ['price', 'next bar (forecast)']
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.02, row_heights=[0.78, 0.22])
    closes = [float(b["close"]) for b in bars]
    start = max(0, len(bars) - show) if show else 0
    view = list(bars[start:])
    x = [b["ts"] for b in view]
    fig.add_trace(go.Candlestick(
        x=x, open=[b["open"] for b in view], high=[b["high"] for b in view],
        low=[b["low"] for b in view], close=[b["close"] for b in view], name="price",
        increasing={"line": {"color": UP, "width": 1}, "fillcolor": UP},
        decreasing={"line": {"color": DOWN, "width": 1}, "fillcolor": DOWN},
        whiskerwidth=0.3,
    ), row=1, col=1)
    for period in sma_periods:
        line = sma(closes, period)[start:]
        fig.add_trace(go.Scatter(x=x, y=line, name=f"SMA {period}", mode="lines",
                                 line={"color": SMA_COLORS.get(period, "#aaaaaa"), "width": 1.4},
                                 hovertemplate=f"SMA {period} %{{y:.2f}}<extra></extra>"), row=1, col=1)
    if view:
        _forecasts(fig, view, forecasts)
        _signals(fig, view, signals)
        _anomalies(fig, view, anomalies)
    fig.add_trace(go.Bar(
        x=x, y=[b["volume"] for b in view], name="volume", showlegend=False,
        marker={"color": [UP if b["close"] >= b["open"] else DOWN for b in view], "opacity": 0.55},
        hovertemplate="vol %{y:,.0f}<extra></extra>",
    ), row=2, col=1)
    fig.update_layout(
        template="plotly_dark", height=height, uirevision=revision or "tickwise",
        paper_bgcolor=BACKGROUND, plot_bgcolor=BACKGROUND,
        margin={"l": 8, "r": 8, "t": 30, "b": 8}, hovermode="x unified", bargap=0.15,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "xanchor": "left", "x": 0,
                "bgcolor": "rgba(0,0,0,0)", "font": {"size": 11}},
        xaxis={"rangeslider": {"visible": False}}, font={"family": "Inter, system-ui, sans-serif"},
        transition={"duration": 0},
    )
    fig.update_xaxes(gridcolor=GRID, showspikes=True, spikecolor="#888", spikethickness=1, spikemode="across",
                     rangebreaks=gaps(view))
    if view:
        step = bar_step(view)
        nxt = next_forecast(view, forecasts)
        right = parse_ts(nxt["ts"]) if nxt is not None else parse_ts(view[-1]["ts"])
        fig.update_xaxes(range=[parse_ts(view[0]["ts"]) - step, right + step * 1.5])
    # no fixed decimals: EURUSD moves in 0.00001 steps, NIFTY50 in 0.05
    fig.update_yaxes(gridcolor=GRID, side="right", row=1, col=1, tickformat=",~r")
    fig.update_yaxes(gridcolor=GRID, side="right", row=2, col=1, tickformat="~s")
    return fig


def _forecasts(fig: go.Figure, view: list[Row], forecasts: Sequence[Row]) -> None:
    first = parse_ts(view[0]["ts"])
    past = sorted((f for f in forecasts if f.get("close") is not None and f.get("ts")
                   and first <= parse_ts(f["ts"]) <= parse_ts(view[-1]["ts"])), key=lambda f: parse_ts(f["ts"]))
    if past:
        fig.add_trace(go.Scatter(
            x=[f["ts"] for f in past], y=[f["close"] for f in past], name="1-step forecast", mode="lines",
            line={"color": FORECAST, "width": 1, "dash": "dot"}, opacity=0.8,
            hovertemplate="forecast %{y:.2f}<extra></extra>",
        ), row=1, col=1)
    nxt = next_forecast(view, forecasts)
    if nxt is None:
        return
    ts = parse_ts(nxt["ts"])
    half = bar_step(view) * 0.45
    for lo, hi, alpha, label in (("lo_95", "hi_95", 0.12, "95%"), ("lo_80", "hi_80", 0.22, "80%")):
        if nxt.get(lo) is not None and nxt.get(hi) is not None:
            fig.add_shape(type="rect", x0=ts - half, x1=ts + half, y0=nxt[lo], y1=nxt[hi], row=1, col=1,
                          line={"width": 0}, fillcolor=f"rgba(66,165,245,{alpha})", layer="below")
            fig.add_trace(go.Scatter(
                x=[ts, ts], y=[nxt[lo], nxt[hi]], mode="markers", marker={"size": 1, "color": FORECAST},
                name=f"{label} interval", showlegend=False,
                hovertemplate=f"{label} interval %{{y:.2f}}<extra></extra>",
            ), row=1, col=1)
    o = nxt.get("open") if nxt.get("open") is not None else view[-1]["close"]
    c = nxt["close"]
    h = nxt.get("high") if nxt.get("high") is not None else max(o, c)
    low = nxt.get("low") if nxt.get("low") is not None else min(o, c)
    fig.add_trace(go.Candlestick(
        x=[ts], open=[o], high=[h], low=[low], close=[c], name="next bar (forecast)",
        increasing={"line": {"color": FORECAST, "width": 1.5}, "fillcolor": "rgba(66,165,245,0.35)"},
        decreasing={"line": {"color": FORECAST, "width": 1.5}, "fillcolor": "rgba(66,165,245,0.35)"},
    ), row=1, col=1)
    fig.add_trace(go.Scatter(
        x=[view[-1]["ts"], ts], y=[view[-1]["close"], c], mode="lines", showlegend=False,
        line={"color": FORECAST, "width": 1, "dash": "dash"}, hoverinfo="skip",
    ), row=1, col=1)
    model = nxt.get("model") or "model"
    fig.add_annotation(x=ts, y=nxt.get("hi_95") or h, text=f"{model}: {c:,.2f}", showarrow=False,
                       yshift=12, font={"color": FORECAST, "size": 11}, row=1, col=1)


def _by_ts(view: list[Row]) -> dict[dt.datetime, Row]:
    return {parse_ts(b["ts"]): b for b in view}


def _signals(fig: go.Figure, view: list[Row], signals: Sequence[Row]) -> None:
    bars = _by_ts(view)
    spread = max(float(b["high"]) for b in view) - min(float(b["low"]) for b in view)
    pad = 0.02 * spread if spread > 0 else 0.01
    for side, symbol, color, key, sign in (("BUY", "triangle-up", UP, "low", -1), ("SELL", "triangle-down", DOWN, "high", 1)):
        xs, ys, text = [], [], []
        for s in signals:
            if str(s.get("signal", "")).upper() != side or not s.get("ts"):
                continue
            bar = bars.get(parse_ts(s["ts"]))
            if bar is None:
                continue
            xs.append(s["ts"])
            ys.append(float(bar[key]) + sign * pad)
            text.append(f"{side} ({s.get('rule') or 'rule'}): {s.get('reason') or ''}")
        if xs:
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="markers", name=side.lower(), text=text,
                marker={"symbol": symbol, "size": 12, "color": color, "line": {"color": "#111", "width": 1}},
                hovertemplate="%{text}<extra></extra>",
            ), row=1, col=1)


def _anomalies(fig: go.Figure, view: list[Row], anomalies: Sequence[Row]) -> None:
    bars = _by_ts(view)
    xs, ys, text = [], [], []
    for a in anomalies:
        if not a.get("ts"):
            continue
        bar = bars.get(parse_ts(a["ts"]))
        if bar is None:
            continue
        xs.append(a["ts"])
        ys.append(float(bar["high"]))
        score = a.get("score")
        score_text = f" score {score:.2f}" if isinstance(score, int | float) else ""
        text.append(f"anomaly ({a.get('detector') or 'detector'}{score_text}): {a.get('explanation') or a.get('kind') or ''}")
    if xs:
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers", name="anomaly", text=text,
            marker={"symbol": "circle-open", "size": 16, "color": ANOMALY, "line": {"width": 2.5}},
            hovertemplate="%{text}<extra></extra>",
        ), row=1, col=1)
