"""Real Prometheus (with an alert rule, evaluating every second), Alertmanager and Pushgateway
for the assessment tests: the alert really fires and resolves as a pushed metric changes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubernaut.testing.services import (
    MonitoringStack,
    ServiceProcess,
    ServiceStartError,
    _start,
    find_binary,
    push_metrics,
    start_alertmanager,
    start_pushgateway,
)

ALERT = "KubernautAssessFault"
RULES = f"""\
groups:
  - name: kubernaut-assessment-tests
    interval: 1s
    rules:
      - alert: {ALERT}
        expr: kubernaut_assess_fault > 0
        labels: {{severity: warning}}
"""


def start_prometheus_with_rules(workdir: Path, scrape: str, alertmanager: str) -> ServiceProcess:
    binary = find_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yml").write_text(RULES)
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files: [{workdir / 'rules.yml'}]\n"
        "alerting:\n  alertmanagers:\n    - static_configs:\n"
        f"        - targets: ['{alertmanager.removeprefix('http://')}']\n"
        "scrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n"
        f"    static_configs:\n      - targets: ['{scrape.removeprefix('http://')}']\n"
    )
    return _start(
        "prometheus",
        lambda port: [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            "--rules.alert.resend-delay=1s",
        ],
        workdir,
        30.0,
    )


@pytest.fixture(scope="session")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitoringStack]:
    base = tmp_path_factory.mktemp("assessment-monitoring")
    started: list[ServiceProcess] = []
    try:
        push = start_pushgateway(base / "pushgateway")
        started.append(push)
        am = start_alertmanager(base / "alertmanager")
        started.append(am)
        prom = start_prometheus_with_rules(base / "prometheus", push.url, am.url)
        started.append(prom)
        yield MonitoringStack(push, prom, am, started)
    except ServiceStartError as exc:
        pytest.fail(f"cannot start the monitoring services: {exc}", pytrace=False)
    finally:
        for process in reversed(started):
            process.stop()


class Fault:
    """One alert of our rule, for one deployment of the sandbox (the pushed metric's labels)."""

    def __init__(self, stack: MonitoringStack, deployment: str) -> None:
        self.stack, self.job, self.deployment = stack, f"a{uuid.uuid4().hex[:8]}", deployment

    def set(self, value: float) -> None:
        grouping = {"namespace": "demo", "deployment": self.deployment}
        push_metrics(
            self.stack.pushgateway.url, self.job, {"kubernaut_assess_fault": value}, grouping=grouping
        )

    def active(self) -> list[dict[str, Any]]:
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("filter", f'alertname="{ALERT}"'),
            ("filter", f'job="{self.job}"'),
            ("active", "true"),
        ]
        response = httpx.get(f"{self.stack.alertmanager.url}/api/v2/alerts", params=params, timeout=5.0)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts

    def wait(self, firing: bool, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Until Alertmanager has (or no longer has) the alert; its active alerts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.active()
            if bool(found) == firing:
                return found
            time.sleep(0.2)
        raise TimeoutError(f"alert {ALERT} of {self.job} {'never fired' if firing else 'still active'}")
