"""The dashboard in headless Chromium against a running `tickwise up` (simulator feed)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, missing
from tickwise.serve.runtime import wait_http

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
CANDLES = '[data-testid="stPlotlyChart"] g.trace.boxes path.box'
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


@pytest.fixture
def running_up(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`tickwise up` with its API and dashboard on free ports; stopped by SIGTERM afterwards."""
    if not Path(CHROMIUM).exists():
        missing(f"headless Chromium is not installed at {CHROMIUM} (apt-get install chromium chromium-driver)")
    api_port, dash_port = free_port(), free_port()
    env = dict(os.environ, TICKWISE_DATA_DIR=str(tmp_path / "data"), TICKWISE_API_PORT=str(api_port),
               TICKWISE_DASHBOARD_PORT=str(dash_port), TICKWISE_SYMBOLS="AAPL,MSFT,SPY", TICKWISE_TICK_RATE="1500")
    exe = Path(sys.executable).with_name("tickwise")
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([str(exe), "up", "--duration", "150"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=tmp_path)
    try:
        api, dashboard = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{dash_port}"
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline and not wait_http(f"{api}/api/v1/health", timeout_s=1):
            pass
        if proc.poll() is not None or not wait_http(f"{dashboard}/_stcore/health", timeout_s=60):
            pytest.fail(f"tickwise up did not serve in time: {(tmp_path / 'up.log').read_text()[-2000:]}")
        yield api, dashboard
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _candles(page) -> int:
    """Candle bodies in the chart (during a redraw Streamlit briefly holds two copies)."""
    return page.locator('[data-testid="stPlotlyChart"]').first.locator("g.trace.boxes path.box").count()


def _wait_count_above(page, n: int, *, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    count = _candles(page)
    while count <= n and time.monotonic() < deadline:
        time.sleep(0.5)
        count = _candles(page)
    return count


def test_dashboard_candles_grow_and_instrument_switches(running_up):
    from playwright.sync_api import sync_playwright

    _, dashboard = running_up
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1250})
            page.goto(dashboard)
            try:
                page.wait_for_selector(CANDLES, state="attached", timeout=90_000)  # a one-tick candle has no height
            except Exception:
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / "dashboard-failed.png"))
                raise
            first = _candles(page)
            later = _wait_count_above(page, first, timeout_s=30)
            assert later > first, f"candles did not grow: {first} then {later}"
            assert page.locator(".tw-title").first.inner_text().startswith("AAPL")

            page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
            page.get_by_role("option", name="MSFT").click()
            page.wait_for_function(
                "() => { const t = document.querySelector('.tw-title'); return t && t.innerText.startsWith('MSFT'); }",
                timeout=30_000,
            )
            page.wait_for_selector(CANDLES, state="attached", timeout=30_000)  # a one-tick candle has no height
            assert _candles(page) > 0
            page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=20_000)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shot = SCREENSHOTS / "dashboard-live.png"
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 50_000
    shutil.copyfile(shot, SCREENSHOTS / "dashboard-up.png")
