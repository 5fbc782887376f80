"""A failed undo does not stop the other undos: the run records it (rollback_failed) and
escalates through the `notify` action to the configured webhook."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubernaut.actions import Action, ActionContext, ActionError, ActionParams, ActionResult, registry
from kubernaut.history import History
from kubernaut.sandbox import SandboxCluster
from kubernaut.testing.webhook import RecordingServer, recording_server
from tests.conftest import REPO

TEMPLATE = """\
name: undo-fails
description: second change cannot be undone
alert_types: [UndoFails]
steps:
  - name: scale-out
    action: {type: kubernetes, action: scale_deployment,
             parameters: {namespace: demo, deployment: api, replicas: 3}}
  - name: stubborn-change
    action: {type: custom, action: test_stubborn_change, parameters: {}}
  - name: check
    action: {type: custom, action: log, parameters: {message: check}}
"""


class _NoParams(ActionParams):
    pass


class StubbornChange(Action[_NoParams]):
    """A change whose undo always fails (e.g. the object was changed by someone else)."""

    kind = "custom"
    name = "test_stubborn_change"
    Params = _NoParams
    mutating = True

    def run(self, ctx: ActionContext, params: _NoParams) -> ActionResult:
        undo = ctx.remember_prior({"token": "before"})
        return ActionResult(output={"changed": True}, undo=undo, changed=True)

    def undo(self, ctx: ActionContext, params: _NoParams, record: dict[str, Any]) -> dict[str, Any]:
        raise ActionError("cannot restore: the object was replaced meanwhile")


@pytest.fixture
def webhook() -> Iterator[RecordingServer]:
    with recording_server() as server:
        yield server


@pytest.fixture
def undo_fails_dag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, webhook: RecordingServer, airflow_db: str
) -> Iterator[Any]:
    from airflow.dag_processing.dagbag import DagBag

    registry.register(StubbornChange)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "undo-fails.yaml").write_text(TEMPLATE)
    config = tmp_path / "kubernaut.yaml"
    config.write_text("notify_conn_id: ops_webhook\n")
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(config))
    monkeypatch.setenv("AIRFLOW_CONN_OPS_WEBHOOK", json.dumps({"conn_type": "http", "host": webhook.url}))
    monkeypatch.setenv("KUBERNAUT_TEMPLATES_DIR", str(templates))
    bag = DagBag(str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    yield bag.dags["kubernaut_undo_fails"]
    registry._actions.pop(("custom", "test_stubborn_change"), None)


def test_failed_undo_continues_records_and_escalates(
    undo_fails_dag: Any, cluster: SandboxCluster, webhook: RecordingServer
) -> None:
    cluster.wait_until(lambda: len(cluster.list("pods", "demo", labels={"app": "api"})) == 2)
    dr = undo_fails_dag.test(
        run_conf={"alert": {"labels": {"alertname": "UndoFails"}}, "inject_failure": {"step": "check"}}
    )
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert str(dr.state) == "failed"
    assert states["check"] == "failed" and states["rollback"] == "failed" and states["finalize"] == "failed"
    # The later change's undo failed; the earlier one was still undone.
    assert cluster.get("deployments", "demo", "api")["spec"]["replicas"] == 2
    run = History().run(dr.run_id)
    assert run is not None and run["status"] == "rollback_failed"
    undo = {u["step"]: (u["undo_status"], u["undo_attempts"]) for u in run["undo"]}
    assert undo["scale-out"] == ("applied", 1)
    assert undo["stubborn-change"][0] == "failed"
    assert "escalated" in {o["outcome"] for o in run["outcomes"]}
    sent = [r.json() for r in webhook.requests]
    assert sent and sent[-1]["severity"] == "critical"
    assert "stubborn-change" in sent[-1]["text"] and sent[-1]["fields"]["failed"] == ["stubborn-change"]
