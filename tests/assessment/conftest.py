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
    push_metrics,
    start_alertmanager,
    start_prometheus,
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
    return start_prometheus(workdir, scrape_targets=[scrape], rules=RULES, alertmanager=alertmanager)


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
