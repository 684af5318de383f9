"""/health and the dashboard's sidebar when a part of the pipeline beside the API has stopped."""

from __future__ import annotations

from pathlib import Path

import httpx

from tickwise.app import build_warehouse
from tickwise.config import load_settings
from tickwise.serve.runtime import start_services


def _sidebar_app(api: str) -> None:
    from tickwise.serve import dashboard

    dashboard.sidebar(api)


def test_health_is_degraded_with_the_stopped_part_and_the_dashboard_says_so(tmp_path: Path) -> None:
    from streamlit.testing.v1 import AppTest

    stopped: list[str] = []
    settings = load_settings(data_dir=tmp_path, api_port=0)
    warehouse = build_warehouse(settings)
    with start_services(settings, warehouse=warehouse, bus=None, dashboard=False, problems=lambda: list(stopped)) as h:
        url = h.api_url + "/api/v1/health"
        ok = httpx.get(url).json()
        stopped.append("stage-forecast stopped: BackendError: bus read failed")
        r = httpx.get(url)
        app = AppTest.from_function(_sidebar_app, args=(h.api_url,), default_timeout=30).run()
    warehouse.close()
    assert ok["status"] == "ok" and ok["detail"] is None
    assert r.status_code == 200  # the API itself answers: not a 503
    assert r.json()["status"] == "degraded"
    assert r.json()["detail"] == "stage-forecast stopped: BackendError: bus read failed"
    assert not app.exception
    warnings = [w.value for w in app.sidebar.warning]
    assert warnings == ["Pipeline degraded: stage-forecast stopped: BackendError: bus read failed"], warnings
    assert any("API connected" in m.value for m in app.sidebar.markdown)
