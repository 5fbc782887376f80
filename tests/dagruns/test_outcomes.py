"""A run's outcome tells the truth (dag.test, PostgreSQL history, the sandbox over HTTP):

- a step that times out fails the run and rolls back what came before;
- an undo that cannot bring the prior state back is `not_restorable` with its reason, the run
  `partially_rolled_back`, escalated — never `rolled_back`;
- a template's `rollback:` action is rendered with the context its step had (run parameters
  and upstream outputs), not with empty `params` and `steps`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubernaut.actions import (
    Action,
    ActionContext,
    ActionParams,
    ActionResult,
    NotRestorable,
    registry,
)
from kubernaut.history import History
from kubernaut.operators.rollback import RunState, outcome_of
from kubernaut.sandbox import SandboxCluster
from kubernaut.testing.webhook import RecordingServer, recording_server
from tests.conftest import REPO

TEMPLATES = {
    "outcome-timeout": """\
name: outcome-timeout
description: a step hangs past its timeout after a change was made
alert_types: [OutcomeTimeout]
steps:
  - name: scale-out
    action: {type: kubernetes, action: scale_deployment,
             parameters: {namespace: demo, deployment: api, replicas: 3}}
  - name: hang
    timeout: 2s
    action: {type: custom, action: test_hang, parameters: {}}
""",
    "outcome-partial": """\
name: outcome-partial
description: one change undoes, one cannot, one action has no undo at all
alert_types: [OutcomePartial]
steps:
  - name: scale-out
    action: {type: kubernetes, action: scale_deployment,
             parameters: {namespace: demo, deployment: api, replicas: 3}}
  - name: one-way-change
    action: {type: custom, action: test_one_way, parameters: {}}
  - name: no-undo-change
    action: {type: custom, action: test_no_undo, parameters: {}}
  - name: check
    action: {type: custom, action: log, parameters: {message: check}}
""",
    "outcome-render": """\
name: outcome-render
description: the rollback action reads params and an upstream step's output
alert_types: [OutcomeRender]
parameters:
  target: {type: string, default: web}
steps:
  - name: assess
    action: {type: kubernetes, action: get_deployment_status,
             parameters: {namespace: demo, deployment: "{{ params.target }}"}}
  - name: scale-out
    action: {type: kubernetes, action: scale_deployment,
             parameters: {namespace: demo, deployment: "{{ params.target }}",
                          replicas: "{{ steps['assess'].desired + 1 }}"}}
    rollback:
      action: scale_deployment
      parameters: {namespace: demo, deployment: "{{ params.target }}",
                   replicas: "{{ steps['assess'].desired - 1 }}"}
  - name: check
    action: {type: custom, action: log, parameters: {message: check}}
""",
}


class _NoParams(ActionParams):
    pass


class Hang(Action[_NoParams]):
    """Stands for a call that never returns (a hung API server): only the task timeout ends it."""

    kind = "custom"
    name = "test_hang"
    Params = _NoParams

    def run(self, ctx: ActionContext, params: _NoParams) -> ActionResult:
        time.sleep(60)
        return ActionResult()


class OneWay(Action[_NoParams]):
    """A change whose prior state cannot come back (like a PVC that cannot shrink)."""

    kind = "custom"
    name = "test_one_way"
    Params = _NoParams
    mutating = True

    def run(self, ctx: ActionContext, params: _NoParams) -> ActionResult:
        undo = ctx.remember_prior({"size": "1Gi"})
        return ActionResult(output={"size": "2Gi"}, undo=undo, changed=True)

    def undo(self, ctx: ActionContext, params: _NoParams, record: dict[str, Any]) -> dict[str, Any]:
        raise NotRestorable("the volume cannot shrink back to 1Gi")


class NoUndo(Action[_NoParams]):
    """A change with no undo at all (like a POST to another system)."""

    kind = "custom"
    name = "test_no_undo"
    Params = _NoParams
    mutating = True

    def run(self, ctx: ActionContext, params: _NoParams) -> ActionResult:
        ctx.remember_prior({"note": "sent a request"})
        return ActionResult(output={"sent": True}, changed=True)


@pytest.fixture
def webhook() -> Iterator[RecordingServer]:
    with recording_server() as server:
        yield server


@pytest.fixture
def bag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, webhook: RecordingServer, airflow_db: str
) -> Iterator[Any]:
    from airflow.dag_processing.dagbag import DagBag

    test_actions = (Hang, OneWay, NoUndo)
    for cls in test_actions:
        registry.register(cls)
    templates = tmp_path / "templates"
    templates.mkdir()
    for name, text in TEMPLATES.items():
        (templates / f"{name}.yaml").write_text(text)
    config = tmp_path / "kubernaut.yaml"
    # The rollback task's own notice and the escalation from finalize, both to one receiver.
    config.write_text("notify_conn_id: ops_webhook\nescalation: {conn_id: ops_webhook}\n")
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(config))
    monkeypatch.setenv("AIRFLOW_CONN_OPS_WEBHOOK", json.dumps({"conn_type": "http", "host": webhook.url}))
    monkeypatch.setenv("KUBERNAUT_TEMPLATES_DIR", str(templates))
    dags = DagBag(str(REPO / "dags"))
    assert not dags.import_errors, dags.import_errors
    yield dags
    for cls in test_actions:
        registry._actions.pop((cls.kind, cls.name), None)


def _run(bag: Any, template: str, conf: dict[str, Any]) -> tuple[Any, dict[str, str], dict[str, Any]]:
    dag = bag.dags["kubernaut_" + template.replace("-", "_")]
    dr = dag.test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    run = History().run(dr.run_id)
    assert run is not None
    return dr, states, run


def _api_ready(cluster: SandboxCluster) -> None:
    cluster.wait_until(lambda: len(cluster.list("pods", "demo", labels={"app": "api"})) == 2)


def test_a_step_that_times_out_fails_the_run_and_rolls_back(bag: Any, cluster: SandboxCluster) -> None:
    _api_ready(cluster)
    dr, states, run = _run(bag, "outcome-timeout", {"alert": {"labels": {"alertname": "OutcomeTimeout"}}})
    assert str(dr.state) == "failed"
    assert states["scale-out"] == "success" and states["hang"] == "failed"
    assert states["rollback"] == "success" and states["finalize"] == "failed"
    assert cluster.get("deployments", "demo", "api")["spec"]["replicas"] == 2
    assert run["status"] == "rolled_back"


def test_undo_that_restores_nothing_is_partially_rolled_back_and_escalated(
    bag: Any, cluster: SandboxCluster, webhook: RecordingServer
) -> None:
    _api_ready(cluster)
    conf = {"alert": {"labels": {"alertname": "OutcomePartial"}}, "inject_failure": {"step": "check"}}
    dr, states, run = _run(bag, "outcome-partial", conf)
    assert str(dr.state) == "failed"
    assert states["rollback"] == "success" and states["finalize"] == "failed"
    assert run["status"] == "partially_rolled_back"
    undo = {u["step"]: u for u in run["undo"]}
    assert undo["scale-out"]["undo_status"] == "applied"
    assert cluster.get("deployments", "demo", "api")["spec"]["replicas"] == 2
    assert undo["one-way-change"]["undo_status"] == "not_restorable"
    assert undo["one-way-change"]["undo_result"] == {"reason": "the volume cannot shrink back to 1Gi"}
    assert undo["no-undo-change"]["undo_status"] == "not_restorable"
    assert "has no undo" in undo["no-undo-change"]["undo_result"]["reason"]
    assert "escalated" in {o["outcome"] for o in run["outcomes"]}
    sent = [r.json() for r in webhook.requests]
    notices = [m for m in sent if m.get("kind") != "escalation"]
    assert notices and notices[-1]["fields"]["not_restorable"] == ["no-undo-change", "one-way-change"]
    # ... and the escalation through the notifier, from finalize, once, naming the outcome.
    [escalated] = [m for m in sent if m.get("kind") == "escalation"]
    assert escalated["outcome"] == "partially_rolled_back" and escalated["template"] == "outcome-partial"
    assert escalated["url"].endswith(f"/kubernaut/ui/remediations/{run['id']}")


def test_rollback_action_is_rendered_with_the_steps_context(bag: Any, cluster: SandboxCluster) -> None:
    _api_ready(cluster)
    conf = {
        "alert": {"labels": {"alertname": "OutcomeRender"}},
        "params": {"target": "api"},
        "inject_failure": {"step": "check"},
    }
    _, states, run = _run(bag, "outcome-render", conf)
    assert states["scale-out"] == "success" and states["rollback"] == "success"
    # The run's params.target (api, not the default web) and steps['assess'].desired (2) - 1:
    # rendered as the step was, not with empty params and steps.
    assert cluster.get("deployments", "demo", "api")["spec"]["replicas"] == 1
    assert cluster.get("deployments", "demo", "web")["spec"]["replicas"] == 3
    assert run["status"] == "rolled_back"


@pytest.mark.parametrize(
    ("failed", "rejected", "on_reject", "rollback", "journal", "expected"),
    [
        ([], [], False, "skipped", [], "success"),
        (["a"], [], False, "success", ["applied"], "rolled_back"),
        (["approve-a"], [], False, "success", ["applied"], "rolled_back"),
        (["a"], [], False, "success", ["applied", "not_restorable"], "partially_rolled_back"),
        (["a"], [], False, "failed", ["applied", "failed"], "rollback_failed"),
        (["a"], [], False, "upstream_failed", None, "rollback_failed"),
        ([], ["approve-a"], True, "success", ["applied"], "declined"),
        ([], ["approve-a"], False, "skipped", [], "declined"),
        ([], ["approve-a"], True, "failed", ["failed"], "rollback_failed"),
    ],
)
def test_outcome_table(
    failed: list[str],
    rejected: list[str],
    on_reject: bool,
    rollback: str,
    journal: list[str] | None,
    expected: str,
) -> None:
    state = RunState(states={}, failed=failed, rejected=rejected, rollback_on_reject=on_reject)
    assert outcome_of(state, rollback, journal) == expected
