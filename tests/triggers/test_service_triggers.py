"""StepWaitTrigger polling real Prometheus and Alertmanager through the Airflow connections
the steps use (read in the trigger with BaseHook.aget_connection)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kubernaut.testing.services import (
    MonitoringStack,
    ServiceStartError,
    fire_alert,
    monitoring_stack,
    push_metrics,
    resolve_alert,
    wait_for_query,
)
from kubernaut.triggers.wait import StepWaitTrigger
from kubernaut.waits.spec import WaitSpec
from tests.triggers.conftest import as_stored, fire


@pytest.fixture(scope="module")
def stack() -> Iterator[MonitoringStack]:
    try:
        with monitoring_stack() as running:
            yield running
    except ServiceStartError as exc:
        pytest.fail(f"cannot start the monitoring services: {exc}", pytrace=False)


@pytest.fixture
def services(stack: MonitoringStack, monkeypatch: pytest.MonkeyPatch) -> MonitoringStack:
    for name, value in stack.connection_env().items():
        monkeypatch.setenv(name, value)
    return stack


def trigger(kind: str, args: dict[str, Any], seconds: float, what: str) -> StepWaitTrigger:
    wait = WaitSpec(kind, args, deadline=time.time() + seconds, poll=0.2, what=what, wording="holds")
    return as_stored(StepWaitTrigger(wait=wait.to_dict()))


def test_prometheus_wait_ends_when_the_samples_pass(services: MonitoringStack) -> None:
    job = f"t{uuid.uuid4().hex[:10]}"
    query = f'kt_error_ratio{{job="{job}"}}'
    push_metrics(services.pushgateway.url, job, {"kt_error_ratio": 0.9})
    wait_for_query(services.prometheus.url, query)
    args = {"conn_id": "prometheus_default", "query": query, "condition": {"op": "<", "value": 0.5}}
    event = fire(trigger("prometheus", args, 1.0, f"Prometheus check on {query!r}"))
    assert event["status"] == "timeout"
    assert event["message"] == f"Prometheus check on {query!r} does not hold within 1s: {event['detail']}"
    assert (
        event["detail"].startswith("1 of 1 samples not < 0.5: kt_error_ratio{") and "= 0.9" in event["detail"]
    )

    threading.Timer(1.0, push_metrics, (services.pushgateway.url, job, {"kt_error_ratio": 0.1})).start()
    event = fire(trigger("prometheus", {**args, "max_samples": 5}, 20.0, "check"))
    assert event["status"] == "done" and event["polls"] > 1
    assert event["detail"]["sample_count"] == 1 and event["detail"]["samples"][0]["value"] == 0.1


def test_alertmanager_wait_ends_when_the_alert_resolves(services: MonitoringStack) -> None:
    job = f"t{uuid.uuid4().hex[:10]}"
    labels = {"alertname": job, "pod": "web-1"}
    fire_alert(services.alertmanager.url, labels)
    matchers = [{"name": "alertname", "value": job, "op": "="}, {"name": "pod", "value": "web-1", "op": "="}]
    args = {"conn_id": "alertmanager_default", "matchers": matchers, "silenced": True}
    event = fire(trigger("alerts_resolved", args, 1.0, "alert resolved"))
    assert event["status"] == "timeout" and event["detail"].startswith("1 still active: {")
    threading.Timer(1.0, resolve_alert, (services.alertmanager.url, labels)).start()
    event = fire(trigger("alerts_resolved", args, 20.0, "alert resolved"))
    assert event["status"] == "done" and event["detail"]["resolved"] is True


def test_a_missing_connection_is_an_error_naming_it(
    services: MonitoringStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_PROMETHEUS_DEFAULT")
    event = fire(trigger("prometheus", {"conn_id": "prometheus_default", "query": "up"}, 5.0, "check"))
    assert event["status"] == "error" and event["polls"] == 1
    assert "Airflow connection 'prometheus_default' is not available" in event["message"]
