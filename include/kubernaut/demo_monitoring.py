"""Prometheus and Alertmanager for `kubernaut demo`, so its run is assessed for real.

When the Debian ``prometheus`` and ``prometheus-alertmanager`` binaries are on PATH (or named by
``$KUBERNAUT_PROMETHEUS_BIN`` / ``$KUBERNAUT_ALERTMANAGER_BIN``), the demo starts both on
loopback ports:

* a metrics endpoint exporting, at every scrape, what kube-state-metrics exports for the demo's
  Deployment read live from the sandbox (``kube_deployment_spec_replicas``,
  ``kube_deployment_status_replicas_available``; 0 when the status has none, as
  kube-state-metrics does);
* Prometheus scraping it every second with the kubernetes-mixin's replica-mismatch rule
  (without its ``for: 15m``), sending to
* Alertmanager (no receiver: the demo delivers the alert to the intake itself, as Alertmanager
  has it, and reads the decision).

The effectiveness assessment then asks both (``alertmanager_default`` and
``prometheus_default``): the alert is gone once the Deployment is available again. Without the
binaries nothing is started and the verdict is ``unknown``, with the reason.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kubernaut.local_stack import SandboxProcess
from kubernaut.simulate.scenario import PrometheusSpec, Series
from kubernaut.simulate.services import SCRAPE_JOB, Metrics
from kubernaut.testing.services import (
    ServiceProcess,
    ServiceStartError,
    connection_env_name,
    find_binary,
    start_alertmanager,
)
from kubernaut.testing.services import start_prometheus as testing_prometheus

ALERT = "KubeDeploymentReplicasMismatch"
RULES = f"""\
groups:
  - name: kubernaut-demo
    interval: 1s
    rules:
      - alert: {ALERT}
        expr: kube_deployment_spec_replicas > kube_deployment_status_replicas_available
        labels: {{severity: warning}}
        annotations:
          summary: Deployment {{{{ $labels.namespace }}}}/{{{{ $labels.deployment }}}} has not matched the
            expected number of replicas.
"""


def missing() -> str | None:
    """Why the demo cannot start Prometheus and Alertmanager (None: it can)."""
    for service in ("prometheus", "alertmanager"):
        try:
            binary = find_binary(service)
        except ServiceStartError as exc:
            return str(exc)
        if not os.access(binary, os.X_OK):
            return f"{service}: {binary} is not an executable file"
    return None


def deployment_series(namespace: str, name: str) -> PrometheusSpec:
    labels = {"namespace": namespace, "deployment": name}
    ref = {"kind": "Deployment", "namespace": namespace, "name": name}
    return PrometheusSpec(
        series=[
            Series.model_validate(
                {
                    "metric": "kube_deployment_spec_replicas",
                    "labels": labels,
                    "from": {**ref, "field": "spec.replicas"},
                }
            ),
            Series.model_validate(
                {
                    "metric": "kube_deployment_status_replicas_available",
                    "labels": labels,
                    "from": {**ref, "field": "status.availableReplicas"},
                }
            ),
        ]
    )


def sandbox_lookup(sandbox: SandboxProcess) -> Any:
    """Objects read from the sandbox over its Kubernetes API (Deployments only here)."""

    def lookup(kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        if kind != "Deployment" or not namespace:
            return None
        try:
            found: dict[str, Any] = sandbox.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        except httpx.HTTPError:
            return None
        status = found.setdefault("status", {})
        status.setdefault("availableReplicas", 0)  # omitted at 0 by the API, exported as 0
        return found

    return lookup


def start_prometheus(workdir: Path, scrape: str, alertmanager: str) -> ServiceProcess:
    return testing_prometheus(
        workdir,
        scrape_targets=[scrape],
        job_name=SCRAPE_JOB,
        honor_labels=False,
        rules=RULES,
        alertmanager=alertmanager,
        timeout=60.0,
    )


@dataclass
class DemoMonitoring:
    """The metrics endpoint, Alertmanager and Prometheus of one demo; ``stop`` ends them all."""

    workdir: Path
    started: list[ServiceProcess] = field(default_factory=list)
    metrics: Metrics | None = None

    @property
    def prometheus(self) -> ServiceProcess:
        return self.started[1]

    @property
    def alertmanager(self) -> ServiceProcess:
        return self.started[0]

    def start(self, sandbox: SandboxProcess, namespace: str, deployment: str) -> DemoMonitoring:
        try:
            self.metrics = Metrics(deployment_series(namespace, deployment), sandbox_lookup(sandbox)).start()
            self.started.append(start_alertmanager(self.workdir / "alertmanager", timeout=60.0))
            self.started.append(
                start_prometheus(self.workdir / "prometheus", self.metrics.target, self.alertmanager.url)
            )
        except BaseException:
            self.stop()
            raise
        return self

    def connection_env(self) -> dict[str, str]:
        """The Airflow connections the assessment (and the run's resolved-check) use."""
        return {
            connection_env_name("prometheus_default"): self.prometheus.url,
            connection_env_name("alertmanager_default"): self.alertmanager.url,
        }

    def firing(self, alertname: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Alertmanager's active alerts of that name with these labels."""
        params: list[tuple[str, str | int | float | bool | None]] = [("filter", f'alertname="{alertname}"')]
        params += [("filter", f'{k}="{v}"') for k, v in labels.items()]
        params.append(("active", "true"))
        response = httpx.get(f"{self.alertmanager.url}/api/v2/alerts", params=params, timeout=5.0)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def wait_firing(self, alertname: str, labels: dict[str, str], timeout: float = 90.0) -> dict[str, Any]:
        """The alert once Prometheus fired it and Alertmanager has it (as Alertmanager shows it)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self.firing(alertname, labels)
            except httpx.HTTPError:
                found = []
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{alertname} {labels} did not fire within {timeout:.0f}s; Prometheus log:\n"
                    + self.prometheus.log_tail(10)
                )
            time.sleep(0.5)

    def stop(self) -> None:
        for process in reversed(self.started):
            process.stop()
        self.started.clear()
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None


def webhook_alert(am_alert: dict[str, Any]) -> dict[str, Any]:
    """An alert of Alertmanager's API (``GET /api/v2/alerts``) as its webhook delivers it."""
    return {
        "status": "firing",
        "labels": dict(am_alert.get("labels") or {}),
        "annotations": dict(am_alert.get("annotations") or {}),
        "startsAt": am_alert["startsAt"],
        "fingerprint": am_alert["fingerprint"],
        "generatorURL": am_alert.get("generatorURL", ""),
    }
