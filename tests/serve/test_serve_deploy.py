"""Prometheus rules (promtool) and the Grafana dashboard reference only metrics tickwise exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from prometheus_client import REGISTRY

import tickwise.metrics  # noqa: F401  (registers every tickwise metric)
from tests.conftest import ROOT, missing

DEPLOY = ROOT / "deploy"
_METRIC = re.compile(r"\btickwise_[a-z_]+\b")
_SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def _exported() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("tickwise_"):
            names.add(family.name)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    return names


def _referenced(text: str) -> set[str]:
    return {m for m in _METRIC.findall(text) if not m.startswith("tickwise_overview")}


def _promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        missing("promtool is not installed (apt-get install prometheus)")
    return str(exe)


def test_rules_pass_promtool_check():
    result = subprocess.run([_promtool(), "check", "rules", str(DEPLOY / "prometheus" / "rules.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_rules_unit_tests_pass_promtool_test():
    result = subprocess.run([_promtool(), "test", "rules", "rules_test.yml"], cwd=DEPLOY / "prometheus",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_name_only_exported_metrics():
    text = (DEPLOY / "prometheus" / "rules.yml").read_text()
    referenced = _referenced(text)
    assert {"tickwise_last_tick_timestamp_seconds", "tickwise_model_error_ratio", "tickwise_anomalies_total"} <= referenced
    assert referenced - _exported() == set()


def test_grafana_dashboard_is_valid_and_names_only_exported_metrics():
    dashboard = json.loads((DEPLOY / "grafana" / "tickwise.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    referenced = set().union(*(_referenced(e) for e in exprs))
    unknown = {m for m in referenced if m not in _exported() and not m.endswith(_SUFFIXES)}
    assert unknown == set()
    for name in ("tickwise_ticks_ingested_total", "tickwise_bus_lag_entries", "tickwise_bar_latency_seconds_bucket",
                 "tickwise_deadletters_total", "tickwise_model_error_ratio", "tickwise_anomalies_total",
                 "tickwise_api_request_duration_seconds_bucket"):
        assert name in referenced, name
