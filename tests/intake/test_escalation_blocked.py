"""A `blocked` decision escalates through the configured notifier, from the intake's own
flow (HTTP webhook, real history in PostgreSQL), once per alert occurrence, with a link to the
decisions page; a receiver that is down never changes the intake's answer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubernaut.config import parse_config
from kubernaut.testing.webhook import RecordingServer, Reply, recording_server
from tests.intake.intake_server import IntakeServer, history_database, intake_server, webhook_alert

TEMPLATE = """\
name: block-probe
description: answers BlockProbe; no cooldown and no backoff, so only the block rules apply
alert_types: [BlockProbe]
configuration: {cooldown: 0s}
steps:
  - name: look
    action: {type: kubernetes, action: get_pod_status,
             parameters: {namespace: "{{ alert.namespace }}", pod: "{{ alert.resource }}"}}
"""
BASE_URL = "https://airflow.example.test"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IntakeServer]:
    templates = Path(tmp_path_factory.mktemp("templates"))
    (templates / "block-probe.yaml").write_text(TEMPLATE)
    config = parse_config(
        {"blocking": {"backoff": {"base": 0}}, "escalation": {"conn_id": "ops_escalation_intake"}}, "test"
    )
    with history_database("kn_escalate") as uri, intake_server(uri, templates, config) as srv:
        yield srv


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingServer]:
    with recording_server() as server:
        conn = {"conn_type": "http", "host": server.url}
        monkeypatch.setenv("AIRFLOW_CONN_OPS_ESCALATION_INTAKE", json.dumps(conn))
        monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL)
        yield server


def _fail_three_runs(server: IntakeServer, pod: str) -> None:
    """Three launched runs for the pod that each ended failed: the next alert is blocked."""
    history = server.history()
    try:
        for _ in range(3):
            d = server.post(webhook_alert("BlockProbe", {"namespace": "demo", "pod": pod}))["decisions"][0]
            assert d["decision"] == "triggered", d
            alert = {"name": "BlockProbe", "kind": "Pod", "namespace": "demo", "resource": pod}
            run_id = history.ensure_run(d["dag_id"], d["dag_run_id"], "block-probe", alert, False)
            history.finish_run(run_id, "failed")
    finally:
        history.close()


def _wait(check: Any, seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    return check()


def test_blocked_escalates_once_per_alert_occurrence(server: IntakeServer, receiver: RecordingServer) -> None:
    pod = "blocked-pod"
    _fail_three_runs(server, pod)
    alert = webhook_alert("BlockProbe", {"namespace": "demo", "pod": pod})
    blocked = server.post(alert)["decisions"][0]
    assert blocked["decision"] == "blocked", blocked
    assert _wait(lambda: receiver.requests), "no escalation arrived"
    sent = receiver.requests[0].json()
    assert sent["outcome"] == "blocked" and sent["alert_name"] == "BlockProbe"
    assert sent["target"] == {"kind": "Pod", "namespace": "demo", "name": pod}
    assert sent["template"] == "block-probe" and sent["reason"] == blocked["reason"]
    assert (
        sent["url"] == f"{BASE_URL}/kubernaut/ui/decisions?decision=blocked&alert=BlockProbe&namespace=demo"
    )
    assert sent["dag_run_id"] == blocked["dag_run_id"] and sent["fingerprint"] == alert["fingerprint"]
    subject = f"{blocked['dag_id']}/{blocked['dag_run_id']}"
    assert _wait(
        lambda: (
            server.rows("SELECT status FROM kubernaut_escalations WHERE subject = %s", (subject,))
            == [("sent",)]
        )
    )
    # Alertmanager re-sends the same occurrence: still blocked, nothing sent again.
    assert server.post(alert)["decisions"][0]["decision"] == "blocked"
    time.sleep(0.5)  # time for a (wrong) second delivery in the background to arrive
    assert len(receiver.requests) == 1


def test_a_receiver_that_is_down_is_recorded_and_never_breaks_the_intake(
    server: IntakeServer, receiver: RecordingServer
) -> None:
    receiver.default = Reply(status=503, body={"error": "down"})
    pod = "blocked-pod-2"
    _fail_three_runs(server, pod)
    blocked = server.post(webhook_alert("BlockProbe", {"namespace": "demo", "pod": pod}))["decisions"][0]
    assert blocked["decision"] == "blocked", blocked
    subject = f"{blocked['dag_id']}/{blocked['dag_run_id']}"
    rows = _wait(
        lambda: server.rows(
            "SELECT status, deliveries FROM kubernaut_escalations WHERE subject = %s AND status <> 'sending'",
            (subject,),
        )
    )
    [(status, deliveries)] = rows
    assert status == "failed" and deliveries[0]["status"] == "failed" and "503" in deliveries[0]["error"]
    assert len(receiver.requests) >= 1  # tried (with retries), then given up for this delivery
