"""Escalations go out through the configured Airflow notifiers from the run's `finalize`
(where the outcome is decided), once per run and outcome, with a link to the remediation page;
a failed delivery is recorded (secrets masked) and never changes how the run ends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubernaut.actions import registry
from kubernaut.config import load_config
from kubernaut.history import History
from kubernaut.notifiers import escalation
from kubernaut.sandbox import SandboxCluster
from kubernaut.testing.webhook import RecordingServer, Reply, recording_server
from tests.conftest import REPO
from tests.dagruns.test_failed_undo import TEMPLATE, StubbornChange

BASE_URL = "https://airflow.example.test:8443"
SECRET = "hunter2-not-in-any-record"


@pytest.fixture
def receivers() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    with recording_server() as good, recording_server() as broken:
        broken.default = Reply(status=500, body={"error": "receiver down"})
        yield good, broken


@pytest.fixture
def escalating_dag(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    receivers: tuple[RecordingServer, RecordingServer],
    airflow_db: str,
) -> Iterator[Any]:
    from airflow.dag_processing.dagbag import DagBag

    good, broken = receivers
    registry.register(StubbornChange)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "undo-fails.yaml").write_text(TEMPLATE)
    config = tmp_path / "kubernaut.yaml"
    config.write_text(
        "escalation:\n"
        "  conn_id: ops_escalation\n"
        "  notifiers:\n"
        "    - notifier: kubernaut.notifiers.KubernautWebhookNotifier\n"
        "      kwargs: {conn_id: ops_pager, path: /hook, retries: 0, timeout: 5}\n"
    )
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(config))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL + "/")
    monkeypatch.setenv("AIRFLOW_CONN_OPS_ESCALATION", json.dumps({"conn_type": "http", "host": good.url}))
    pager = {"conn_type": "http", "host": broken.url, "login": "ops", "password": SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_OPS_PAGER", json.dumps(pager))
    monkeypatch.setenv("KUBERNAUT_TEMPLATES_DIR", str(templates))
    bag = DagBag(str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    yield bag.dags["kubernaut_undo_fails"]
    registry._actions.pop(("custom", "test_stubborn_change"), None)


def _escalations(history: History, subject: str) -> list[dict[str, Any]]:
    return history._query("SELECT * FROM kubernaut_escalations WHERE subject = %s", (subject,))


def test_rollback_failed_escalates_once_with_a_link_and_a_failed_delivery_is_retried(
    escalating_dag: Any,
    cluster: SandboxCluster,
    receivers: tuple[RecordingServer, RecordingServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    good, broken = receivers
    cluster.wait_until(lambda: len(cluster.list("pods", "demo", labels={"app": "api"})) == 2)
    alert = {"labels": {"alertname": "UndoFails", "namespace": "demo", "deployment": "api"}}
    dr = escalating_dag.test(run_conf={"alert": alert, "inject_failure": {"step": "check"}})
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    # The run ends as it would without notifiers: the broken receiver changes nothing.
    assert str(dr.state) == "failed" and states["finalize"] == "failed"
    history = History()
    try:
        run = history.run(dr.run_id)
        assert run is not None and run["status"] == "rollback_failed"
        # The working notifier got the escalation once, with what a person needs and the link.
        assert [r.path for r in good.requests] == ["/"]
        sent = good.requests[0].json()
        assert sent["outcome"] == "rollback_failed" and sent["kind"] == "escalation"
        assert sent["alert_name"] == "UndoFails" and sent["template"] == "undo-fails"
        assert sent["target"] == {"kind": "Deployment", "namespace": "demo", "name": "api"}
        assert "check failed" in sent["reason"] and "a human must look" in sent["reason"]
        assert sent["url"] == f"{BASE_URL}/kubernaut/ui/remediations/{run['id']}"
        assert sent["url"] in sent["text"] and sent["run_id"] == run["id"]
        # The broken one was tried, and its failure recorded without the connection's secret.
        assert [r.path for r in broken.requests] == ["/hook"]
        subject = f"kubernaut_undo_fails/{dr.run_id}"
        [row] = _escalations(history, subject)
        assert (row["kind"], row["status"], row["attempts"], row["run_id"]) == (
            "rollback_failed",
            "failed",
            1,
            run["id"],
        )
        by_name = {d["notifier"]: d for d in row["deliveries"]}
        assert by_name["KubernautWebhookNotifier(ops_escalation)"]["status"] == "sent"
        failed = by_name["KubernautWebhookNotifier(ops_pager)"]
        assert failed["status"] == "failed" and "500" in failed["error"]
        assert SECRET not in json.dumps(row, default=str) and SECRET not in caplog.text
        outcomes = {(o["kind"], o["outcome"]) for o in history.run(run["id"])["outcomes"]}  # type: ignore[index]
        assert ("escalation", "failed") in outcomes  # shown on the remediation page

        # A retried finalize (same run, same outcome): only the failed notifier is tried again.
        broken.default = Reply(status=200)
        e = escalation.Escalation(
            outcome="rollback_failed",
            subject=subject,
            alert_name="UndoFails",
            target=sent["target"],
            template="undo-fails",
            reason=sent["reason"],
            url=sent["url"],
            run_id=run["id"],
        )
        config = load_config().escalation
        assert escalation.escalate(config, history, e) == "sent"
        assert len(good.requests) == 1 and len(broken.requests) == 2
        [row] = _escalations(history, subject)
        assert (row["status"], row["attempts"]) == ("sent", 2)
        outcomes = {(o["kind"], o["outcome"]) for o in history.run(run["id"])["outcomes"]}  # type: ignore[index]
        assert ("escalation", "sent") in outcomes
        # ... and once everything went out, never again.
        assert escalation.escalate(config, history, e) == "already"
        assert len(good.requests) == 1 and len(broken.requests) == 2
    finally:
        history.close()
