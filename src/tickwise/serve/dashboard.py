"""The live dashboard (Streamlit). It reads everything through the API, never the database.

Run it with ``tickwise dashboard`` (or let ``tickwise up`` start it); by hand:
``streamlit run dashboard.py -- --api http://127.0.0.1:8000``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import sys
from typing import Any

import httpx
import streamlit as st

from tickwise.serve.charts import candle_figure, parse_ts
from tickwise.timeframes import timeframe_ns

_CSS = """
<style>
  .block-container {padding-top: 3.2rem; padding-bottom: 1rem; max-width: 100%;}
  header[data-testid="stHeader"] {background: transparent; height: 2.4rem;}
  [data-testid="stToolbar"] {visibility: hidden;}
  .tw-title {font-size: 1.25rem; font-weight: 650; margin-bottom: 0.4rem;}
  .tw-title .live {display:inline-block; font-size: 0.7rem; font-weight: 600; color: #0e1117;
                   background: #26a69a; border-radius: 4px; padding: 1px 6px; margin-left: 8px;
                   vertical-align: middle;}
  [data-testid="stMetric"] {background: #161b26; border: 1px solid #232a3a; border-radius: 10px;
                            padding: 10px 14px;}
  [data-testid="stMetricLabel"] p {color: #8b94a7; font-size: 0.78rem; text-transform: uppercase;
                                   letter-spacing: 0.04em;}
  [data-testid="stMetricValue"] {font-size: 1.45rem;}
  .tw-brand {font-size: 1.5rem; font-weight: 700; letter-spacing: -0.02em;}
  .tw-brand span {color: #26a69a;}
  .tw-sub {color: #8b94a7; font-size: 0.85rem; margin-top: -0.3rem;}
  .tw-panel-title {font-weight: 600; font-size: 0.95rem; margin: 0.2rem 0 0.4rem 0; color: #d6dbe6;}
  .tw-alert {border-left: 3px solid #ff9800; background: #161b26; border-radius: 6px;
             padding: 6px 10px; margin-bottom: 6px; font-size: 0.84rem;}
  .tw-alert.critical {border-left-color: #ef5350;}
  .tw-alert .meta {color: #8b94a7; font-size: 0.74rem;}
  .tw-dot {display:inline-block; width:9px; height:9px; border-radius:50%; margin-right:6px;}
  .tw-empty {color: #6b7385; font-size: 0.85rem; padding: 8px 0;}
</style>
"""


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tickwise dashboard")
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--refresh", type=float, default=1.0)
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args


@st.cache_resource
def _client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=5.0)


def _get(api: str, path: str, **params: Any) -> Any:
    try:
        r = _client(api).get(path, params={k: v for k, v in params.items() if v is not None})
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def _fmt_price(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def _age(ts: Any) -> str:
    if not ts:
        return "—"
    seconds = (dt.datetime.now(dt.UTC) - parse_ts(ts)).total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return parse_ts(ts).strftime("%Y-%m-%d")


def sidebar(api: str) -> tuple[str | None, str | None, int, dict[str, bool]]:
    st.sidebar.markdown('<div class="tw-brand">tick<span>wise</span></div>'
                        '<div class="tw-sub">live market &amp; models</div>', unsafe_allow_html=True)
    health = _get(api, "/api/v1/health")
    status = health.get("status") if health else None
    color = {"ok": "#26a69a", "degraded": "#ffa726"}.get(str(status), "#ef5350")
    st.sidebar.markdown(f'<span class="tw-dot" style="background:{color}"></span>'
                        f'API {"connected" if status else "unreachable"} · <code>{html.escape(api)}</code>',
                        unsafe_allow_html=True)
    if status == "degraded":  # the API answers, but part of the pipeline beside it has stopped
        st.sidebar.warning(f"Pipeline degraded: {health.get('detail')}")  # type: ignore[union-attr]
    series = _get(api, "/api/v1/series") or []
    symbols = sorted({s["symbol"] for s in series})
    if not symbols:
        st.sidebar.info("No bars yet: start the pipeline (tickwise up) or import a file.")
        return None, None, 120, {}
    symbol = st.sidebar.selectbox("Instrument", symbols, key="symbol")
    frames = sorted((s["timeframe"] for s in series if s["symbol"] == symbol), key=timeframe_ns)
    timeframe = st.sidebar.selectbox("Timeframe", frames, key="timeframe") if frames else None
    n = st.sidebar.slider("Bars shown", min_value=30, max_value=500, value=120, step=10, key="bars")
    st.sidebar.markdown("**Overlays**")
    layers = {
        "sma": st.sidebar.checkbox("SMA 9 / 21", value=True),
        "forecast": st.sidebar.checkbox("Forecast + interval", value=True),
        "signals": st.sidebar.checkbox("Buy / sell signals", value=True),
        "anomalies": st.sidebar.checkbox("Anomalies", value=True),
    }
    st.sidebar.caption(f"Docs: {api}/docs · Metrics: {api}/metrics")
    return symbol, timeframe, n, layers


def chart(api: str, symbol: str, timeframe: str | None, n: int, layers: dict[str, bool]) -> None:
    bars = _get(api, f"/api/v1/bars/{symbol}", timeframe=timeframe, limit=n + 21) or []
    if not bars:
        st.markdown('<div class="tw-empty">Waiting for the first bar…</div>', unsafe_allow_html=True)
        return
    forecasts = _get(api, f"/api/v1/forecasts/{symbol}", timeframe=timeframe, limit=n + 2) or [] if layers.get("forecast") else []
    signals = _get(api, f"/api/v1/signals/{symbol}", timeframe=timeframe, limit=200) or [] if layers.get("signals") else []
    anomalies = _get(api, "/api/v1/anomalies", symbol=symbol, timeframe=timeframe, limit=200) or [] if layers.get("anomalies") else []
    last, prev = bars[-1], bars[-2] if len(bars) > 1 else bars[-1]
    st.markdown(f'<div class="tw-title">{html.escape(symbol)} <span style="color:#8b94a7;font-weight:400">'
                f'· {html.escape(last["timeframe"])} bars</span><span class="live">LIVE</span></div>',
                unsafe_allow_html=True)
    change = (last["close"] / prev["close"] - 1.0) * 100 if prev["close"] else 0.0
    shown = bars[-n:]
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Last price", _fmt_price(last["close"]), f"{change:+.2f}%")
    c2.metric("Range (shown)", f"{min(b['low'] for b in shown):,.2f} – {max(b['high'] for b in shown):,.2f}")
    c3.metric("Volume (last bar)", f"{last['volume']:,.0f}")
    nxt = next((f for f in reversed(forecasts) if parse_ts(f["ts"]) > parse_ts(last["ts"])), None)
    if nxt is not None and nxt.get("close") is not None:
        move = (nxt["close"] / last["close"] - 1.0) * 100
        c4.metric("Next close (forecast)", _fmt_price(nxt["close"]), f"{move:+.2f}%")
    else:
        c4.metric("Next close (forecast)", "—")
    c5.metric("Last bar", _age(last["ts"]))
    fig = candle_figure(
        bars, show=n, forecasts=forecasts, signals=signals, anomalies=anomalies,
        sma_periods=(9, 21) if layers.get("sma") else (), revision=f"{symbol}/{timeframe}",
    )
    st.plotly_chart(fig, key="candles", config={"displayModeBar": False, "scrollZoom": True})


def health_panel(api: str) -> None:
    st.markdown('<div class="tw-panel-title">Pipeline health</div>', unsafe_allow_html=True)
    stats = _get(api, "/api/v1/stats")
    if not stats:
        st.markdown('<div class="tw-empty">API unreachable</div>', unsafe_allow_html=True)
        return
    a, b = st.columns(2)
    a.metric("Ticks / s", f"{stats['ticks_per_s']:,.0f}")
    lag = sum(stats["bus_lag"].values()) if stats["bus_lag"] else 0
    b.metric("Bus lag (entries)", f"{lag:,.0f}")
    c, d = st.columns(2)
    c.metric("Dead letters", f"{max(stats['deadletters_total'], stats['warehouse_deadletters']):,.0f}")
    p99 = stats.get("bar_latency_p99_s")
    d.metric("Bar latency p99", "—" if p99 is None else f"{p99 * 1000:,.0f} ms")
    st.caption(f"{stats['warehouse_bars']:,} bars stored · newest {_age(stats['latest_bar_ts'])} · "
               f"{stats['stream_subscribers']} live subscribers")


def accuracy_panel(api: str, symbol: str, timeframe: str | None) -> None:
    st.markdown('<div class="tw-panel-title">Live model accuracy</div>', unsafe_allow_html=True)
    acc = _get(api, f"/api/v1/accuracy/{symbol}", timeframe=timeframe, window=200)
    models = (acc or {}).get("models") or []
    if not models:
        st.markdown('<div class="tw-empty">No forecasts scored yet for this instrument.</div>', unsafe_allow_html=True)
        return
    best = min(models, key=lambda m: m["error_ratio"] if m["error_ratio"] is not None else 9e9)
    a, b = st.columns(2)
    ratio = best["error_ratio"]
    a.metric(f"Error ÷ random walk ({best['model']})", "—" if ratio is None else f"{ratio:.3f}",
             None if ratio is None else f"{(1 - ratio) * 100:+.1f}% skill", delta_color="normal")
    cov = best.get("coverage_80")
    b.metric("80% interval coverage", "—" if cov is None else f"{cov * 100:.0f}%",
             None if cov is None else f"{(cov - 0.8) * 100:+.0f} pts", delta_color="off")
    rows = [{"model": m["model"], "bars": m["n"], "MAE": m["mae"], "RW MAE": m["mae_random_walk"],
             "ratio": m["error_ratio"], "cov 80": m["coverage_80"], "cov 95": m["coverage_95"]} for m in models]
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"MAE": st.column_config.NumberColumn(format="%.3f"),
                                "RW MAE": st.column_config.NumberColumn(format="%.3f"),
                                "ratio": st.column_config.NumberColumn(format="%.3f"),
                                "cov 80": st.column_config.NumberColumn(format="percent"),
                                "cov 95": st.column_config.NumberColumn(format="percent")})


def alerts_panel(api: str) -> None:
    st.markdown('<div class="tw-panel-title">Recent alerts</div>', unsafe_allow_html=True)
    alerts = _get(api, "/api/v1/alerts", limit=6) or []
    if not alerts:
        st.markdown('<div class="tw-empty">All quiet: no anomalies or pipeline alerts.</div>', unsafe_allow_html=True)
        return
    items = []
    for a in alerts:
        when = parse_ts(a["ts"]).strftime("%Y-%m-%d %H:%M:%S") if a.get("ts") else ""
        who = f" · {html.escape(a['symbol'])}" if a.get("symbol") else ""
        items.append(f'<div class="tw-alert {html.escape(a["severity"])}">{html.escape(a["message"])}'
                     f'<div class="meta">{html.escape(a["source"])}{who} · {when}</div></div>')
    st.markdown("".join(items), unsafe_allow_html=True)


def main() -> None:
    options = _options()
    st.set_page_config(page_title="tickwise · live", page_icon="📈", layout="wide",
                       initial_sidebar_state="expanded")
    st.markdown(_CSS, unsafe_allow_html=True)
    api = options.api.rstrip("/")
    symbol, timeframe, n, layers = sidebar(api)
    if symbol is None:

        @st.fragment(run_every=options.refresh)
        def wait_for_bars() -> None:
            # the first bars of a pipeline that just started: redraw everything once they exist
            if _get(api, "/api/v1/series"):
                st.rerun(scope="app")
            st.markdown('<div class="tw-empty">Waiting for the first bars…</div>', unsafe_allow_html=True)

        wait_for_bars()
        return

    @st.fragment(run_every=options.refresh)
    def live_chart() -> None:
        chart(api, symbol, timeframe, n, layers)

    @st.fragment(run_every=max(2.0, options.refresh * 2))
    def live_panels() -> None:
        left, middle, right = st.columns([1, 1.25, 1.1])
        with left:
            health_panel(api)
        with middle:
            accuracy_panel(api, symbol, timeframe)
        with right:
            alerts_panel(api)

    live_chart()
    live_panels()


if __name__ == "__main__":
    main()
