"""Grafana and Prometheus provisioning: the files parse, fit together, and every metric the
dashboard queries is one the app exports on ``/metrics``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from support import free_port, wait_for

from riskstream.api import create_app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "riskstream.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "riskstream.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"

#: PromQL words that look like metric names but are not.
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip
#: Sample names each metric type exposes, from its ``# TYPE`` line (text format 0.0.4, where
#: a counter's TYPE line already carries ``_total`` and an Info is a gauge named ``*_info``).
SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "untyped": ("",),
}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dashboard["panels"]:
        yield p
        yield from p.get("panels", [])


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers left once label matchers, grouping
    clauses, range selectors, strings and function calls are removed."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # range selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)\b(\s*\()?", e):
        if m.group(2) is None and m.group(1).lower() not in PROMQL_WORDS:
            names.add(m.group(1))
    return names


def exported(text: str) -> set[str]:
    out = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        out.update(name + suffix for suffix in SUFFIXES[kind])
    return out


def test_metric_name_extraction() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(x_bucket{instance=~"$instance"}[5m])))'
    ) == {"x_bucket"}
    assert metric_names("count(up == 0) or vector(0)") == {"up"}
    assert metric_names("sum(rate(a_total[1m])) / sum(rate(b_total[1m]))") == {"a_total", "b_total"}


def test_every_dashboard_metric_is_exported(make_runtime: Callable[..., Any]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = set().union(*(metric_names(e) for e in exprs(dashboard)))
    text = TestClient(create_app(make_runtime())).get("/metrics").text
    missing = used - exported(text)
    assert not missing, f"dashboard queries metrics /metrics does not export: {sorted(missing)}"
    # The panels the issue asks for are there.
    assert used >= {
        "transactions_processed_total",
        "anomalies_total",
        "processing_latency_seconds_bucket",
        "end_to_end_latency_seconds_bucket",
        "dead_letters_total",
        "kafka_consumer_lag",
        "model_info",
    }


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels(dashboard):
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == uid, p["title"]
        assert p["targets"], p["title"]
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"]), p["title"]
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24, p["title"]
    for e in exprs(dashboard):
        assert e.count("(") == e.count(")") and e.count("{") == e.count("}"), e
    assert dashboard["uid"] and dashboard["templating"]["list"][0]["name"] == "instance"


def test_provisioning_files() -> None:
    providers = yaml.safe_load(PROVIDERS.read_text())
    assert providers["apiVersion"] == 1
    assert providers["providers"][0]["type"] == "file"
    datasources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert datasources[0]["type"] == "prometheus" and datasources[0]["url"].startswith("http")
    prom = yaml.safe_load(PROMETHEUS.read_text())
    [job] = [j for j in prom["scrape_configs"] if j["job_name"] == "riskstream"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"]


# -- optional integration: Debian's Prometheus against the running app -------------------------




@pytest.fixture
def prometheus(live_app: Any, tmp_path: Path) -> Iterator[str]:
    """Debian's ``prometheus`` scraping ``live_app`` every second with the shipped config
    (targets and interval swapped in); yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian's prometheus is not installed (apt-get install -y prometheus)")
    promtool = shutil.which("promtool")
    if promtool is not None:  # the shipped file itself is valid
        check = subprocess.run([promtool, "check", "config", str(PROMETHEUS)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    config = yaml.safe_load(PROMETHEUS.read_text())
    config["global"]["scrape_interval"] = "1s"
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "riskstream")
    job["static_configs"][0]["targets"] = [live_app.base.removeprefix("http://")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={path}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{base}/-/ready", timeout=2).status_code == 200, 30,
                 "prometheus ready")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def query(base: str, expr: str) -> dict[str, Any]:
    body = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]


@pytest.mark.slow
def test_prometheus_scrapes_the_app_and_answers_the_dashboard(prometheus: str) -> None:
    def processed() -> float:
        result = query(prometheus, "transactions_processed_total")["result"]
        return float(result[0]["value"][1]) if result else 0.0

    assert wait_for(lambda: processed() > 0, 30, "a scraped transactions_processed_total") > 0
    version = query(prometheus, "model_info")["result"][0]["metric"]["version"]
    assert version
    wait_for(lambda: query(prometheus, "rate(transactions_processed_total[5s])")["result"], 20,
             "two scrapes")
    dashboard = json.loads(DASHBOARD.read_text())
    for expr in exprs(dashboard):
        # $instance / $__rate_interval are Grafana variables: give them values Grafana would.
        query(prometheus, expr.replace("$instance", ".*").replace("$__rate_interval", "15s"))
