"""/kubernaut/metrics: the history as Prometheus series, scraped by the real Prometheus with the
metrics token (and refused without it); the Grafana dashboard uses exactly those series."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Mount

from kubernaut.testing.services import ServiceProcess, _start, find_binary, wait_for_query
from kubernaut.ui.app import create_app
from kubernaut.ui.queries import UiQueries
from tests.conftest import REPO
from tests.ui.conftest import BULK_RUNS, VIEWER, FakeAccess, Seeded, connect, serve

TOKEN = "scrape-token"
DASHBOARD = REPO / "deploy" / "grafana" / "kubernaut-dashboard.json"


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_exposition_counts_the_history(client: TestClient, ui_db: Seeded) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    by_token = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    by_login = client.get("/metrics", headers=VIEWER)
    assert by_token.status_code == by_login.status_code == 200
    assert by_token.headers["content-type"].startswith("text/plain; version=0.0.4")
    s = _samples(by_token.text)

    def v(name: str, **labels: str) -> float:
        return s[(name, frozenset(labels.items()))]

    assert (
        v("kubernaut_remediations_total", template="rollout-restart", outcome="rollback_failed")
        == BULK_RUNS // 10
    )
    assert (
        v("kubernaut_remediations_total", template="rollout-restart", outcome="success")
        == BULK_RUNS - BULK_RUNS // 10
    )
    assert v("kubernaut_remediations_total", template="pod-crash-recovery", outcome="rolled_back") == 1
    assert v("kubernaut_remediations_total", template="pod-crash-recovery", outcome="declined") == 0
    assert v("kubernaut_decisions_total", decision="triggered") == 2
    assert v("kubernaut_decisions_total", decision="blocked") == 1
    assert v("kubernaut_rollback_steps_total", status="applied") == 2
    assert v("kubernaut_assessments_total", verdict="effective") == 1
    assert v("kubernaut_assessments_total", verdict="ineffective") == 0  # present before it happens
    runs = "kubernaut_run_duration_seconds"
    assert v(f"{runs}_count", template="rollout-restart") == BULK_RUNS
    assert v(f"{runs}_bucket", template="rollout-restart", le="30") == 0
    assert v(f"{runs}_bucket", template="rollout-restart", le="60") == BULK_RUNS  # 40 s each
    assert v(f"{runs}_bucket", template="pod-crash-recovery", le="120") == 0  # 130 s
    assert v(f"{runs}_bucket", template="pod-crash-recovery", le="300") == 1
    assert v(f"{runs}_sum", template="rollout-restart") == pytest.approx(40 * BULK_RUNS, rel=1e-3)
    steps = "kubernaut_step_duration_seconds"
    assert v(f"{steps}_count", action="restart_pod") == 1
    assert "kubernaut_blocked_targets" in by_token.text


@pytest.fixture(scope="module")
def scraped(ui_db: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The plugin's path (/kubernaut/metrics) served by uvicorn, and Prometheus scraping it twice:
    with the token file, and without (which must fail)."""
    work = Path(tmp_path_factory.mktemp("prometheus"))
    ui = create_app(UiQueries(connect=connect), FakeAccess(), metrics_token=lambda: TOKEN)
    root = Starlette(routes=[Mount("/kubernaut", app=ui)])
    served = serve(root)
    target = served.__enter__()
    (work / "token").write_text(TOKEN)
    binary = find_binary("prometheus")
    config = work / "prometheus.yml"
    config.write_text(
        f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: kubernaut
    metrics_path: /kubernaut/metrics
    authorization: {{type: Bearer, credentials_file: {work / "token"}}}
    static_configs: [{{targets: ["{target}"]}}]
  - job_name: anonymous
    metrics_path: /kubernaut/metrics
    static_configs: [{{targets: ["{target}"]}}]
"""
    )
    prometheus: ServiceProcess = _start(
        "prometheus",
        lambda port: [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        work,
        30,
    )
    try:
        wait_for_query(prometheus.url, 'up{job="kubernaut"} == 1', timeout=30)
        yield prometheus.url, target
    finally:
        prometheus.stop()
        served.__exit__(None, None, None)


def test_prometheus_scrapes_with_the_token_and_not_without(scraped: tuple[str, str]) -> None:
    url, _ = scraped
    failed = wait_for_query(url, 'up{job="anonymous"} == 0', timeout=30)
    assert failed
    got = wait_for_query(
        url,
        'kubernaut_remediations_total{job="kubernaut",template="rollout-restart",outcome="rollback_failed"}',
    )
    assert float(got[0]["value"][1]) == BULK_RUNS // 10
    quantile = wait_for_query(
        url,
        "histogram_quantile(0.5, sum by (le) "
        "(kubernaut_run_duration_seconds_bucket{template='rollout-restart'}))",
    )
    assert 30 < float(quantile[0]["value"][1]) <= 60


def _exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_the_dashboard_uses_exactly_the_exposed_series(client: TestClient, scraped: tuple[str, str]) -> None:
    text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    exposed = {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    used: set[str] = set()
    for expr in _exprs():
        names = set(re.findall(r"\bkubernaut_[a-z_]+", expr))
        assert names, expr
        assert names <= exposed, f"{expr}: {names - exposed} not exposed"
        used |= {n for n in names}
    base = {
        re.sub(r"_(bucket|sum|count)$", "", n)
        if n.endswith(("_bucket", "_sum", "_count")) and re.sub(r"_(bucket|sum|count)$", "", n) in families
        else n
        for n in used
    }
    assert base == families, f"exposed but not on the dashboard: {families - base}"
    url, _ = scraped
    for expr in _exprs():  # every panel's query is valid PromQL and answers over the scraped data
        query = expr.replace("$__rate_interval", "1m")
        answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=10).json()
        assert answer["status"] == "success", (expr, answer)
