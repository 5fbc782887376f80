"""DAG shape from templates: dependencies, parallel branches, retries, timeouts, approval,
and a broken template reported as one import error while the others load."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from kubernaut.factory import BROKEN_DAG_ID, build_dags, upstream_closure
from tests.conftest import REPO

SHAPE = """\
name: shape
description: dag shape
alert_types: [Shape]
configuration: {timeout: 7m, retries: 2, retry_delay: 20s}
steps:
  - name: first
    action: {type: custom, action: log, parameters: {message: one}}
  - name: left
    action: {type: custom, action: log, parameters: {message: left}}
    timeout: 30s
    retries: 5
    retry_delay: 3s
    retry_exponential_backoff: true
    max_retry_delay: 1m
  - name: right
    parallel: true
    action: {type: custom, action: wait, parameters: {duration: 1s}}
  - name: join
    action: {type: custom, action: log, parameters: {message: "{{ steps.left.message }}"}}
  - name: gated
    approval: required
    action: {type: kubernetes, action: scale_deployment,
             parameters: {namespace: demo, deployment: web, replicas: 2}}
  - name: other-root
    depends_on: []
    action: {type: custom, action: log, parameters: {message: root}}
"""


def test_dag_shape(tmp_path: Path) -> None:
    (tmp_path / "shape.yaml").write_text(SHAPE)
    dags = build_dags(tmp_path)
    assert set(dags) == {"kubernaut_shape"}
    dag = dags["kubernaut_shape"]
    up = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    assert up == {
        "first": [],
        "left": ["first"],
        "right": ["first"],
        "join": ["left", "right"],
        "approve-gated": ["join"],
        "gated": ["approve-gated"],
        "other-root": [],
        "rollback": ["gated", "other-root"],
        "finalize": ["rollback"],
    }
    assert dag.get_task("rollback").trigger_rule == "all_done"
    assert dag.get_task("finalize").trigger_rule == "all_done"
    assert dag.get_task("left").on_failure_callback
    left, right, join = dag.get_task("left"), dag.get_task("right"), dag.get_task("join")
    assert (left.execution_timeout, left.retries, left.retry_delay) == (
        timedelta(seconds=30),
        5,
        timedelta(seconds=3),
    )
    assert left.retry_exponential_backoff and left.max_retry_delay == timedelta(minutes=1)
    assert (right.execution_timeout, right.retries, right.retry_delay) == (
        timedelta(minutes=7),
        2,
        timedelta(seconds=20),
    )
    assert join.trigger_rule == "none_failed" and dag.get_task("first").trigger_rule == "all_success"
    assert join.upstream_steps == ["first", "left", "right"]
    assert type(dag.get_task("gated")).__name__ == "KubernetesActionOperator"
    gate = dag.get_task("approve-gated")
    assert type(gate).__name__ == "KubernautApprovalOperator"
    # The wait is the HITL operator's own response_timeout (execution_timeout for it is
    # deprecated); it defaults to the step timeout.
    assert gate.response_timeout == timedelta(minutes=7) and gate.execution_timeout is None
    assert gate.on_reject == "rollback" and gate.step == "gated"
    assert dag.schedule is None or str(dag.timetable.summary) == "None"
    assert "kubernaut" in dag.tags and "template:shape" in dag.tags
    assert dag.max_active_runs == 1


def test_upstream_closure_is_transitive_and_ordered() -> None:
    assert upstream_closure({"a": [], "b": ["a"], "c": [], "d": ["b", "c"]}) == {
        "a": [],
        "b": ["a"],
        "c": [],
        "d": ["a", "b", "c"],
    }


def test_broken_template_is_one_import_error_and_others_load(tmp_path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dags_dir, templates = tmp_path / "dags", tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    shutil.copytree(REPO / "dags", dags_dir, ignore=shutil.ignore_patterns("__pycache__"))
    good = sorted(p.stem for p in templates.glob("*.yaml"))
    (templates / "zz-broken.yaml").write_text(
        "name: zz-broken\nalert_types: [X]\nsteps:\n  - name: a\n"
        "    action: {type: kubernetes, action: restrat_pod, parameters: {}}\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBERNAUT_TEMPLATES_DIR", str(templates))
        bag = DagBag(str(dags_dir))
    # One DAG per good template, the assessment DAG (one run per remediation run), the prune's.
    assert sorted(bag.dags) == sorted(
        ["kubernaut_assessment", "kubernaut_maintenance", *("kubernaut_" + g.replace("-", "_") for g in good)]
    )
    assert BROKEN_DAG_ID not in bag.dags
    # The error comes from the file without remediation DAGs: Airflow marks every DAG of a
    # file with an import error stale (tests/bundles checks that in the dag-processor).
    [(path, error)] = bag.import_errors.items()
    assert path.endswith("kubernaut_template_errors.py")
    assert "zz-broken.yaml:5:" in error and "steps[0].action.action" in error
    assert "did you mean 'restart_pod'" in error


APPROVAL = """\
name: approval-fields
description: approval timeout and on_reject
alert_types: [Approval]
steps:
  - name: first
    action: {type: kubernetes, action: cordon_node, parameters: {node: n1}}
  - name: gated
    approval: required
    approval_timeout: 45s
    on_reject: keep
    action: {type: kubernetes, action: drain_node, parameters: {node: n1}}
"""


def test_approval_timeout_and_on_reject_reach_the_gate(tmp_path: Path) -> None:
    (tmp_path / "approval.yaml").write_text(APPROVAL)
    gate = build_dags(tmp_path)["kubernaut_approval_fields"].get_task("approve-gated")
    assert gate.response_timeout == timedelta(seconds=45) and gate.on_reject == "keep"
    assert "Reject ends the run as declined; the changes made before it are kept." in gate.body


@pytest.mark.parametrize("field", ["approval_timeout: 45s", "on_reject: keep"])
def test_approval_fields_need_an_approval(tmp_path: Path, field: str) -> None:
    from kubernaut.templates import TemplateLoadError, load_template

    text = APPROVAL.replace("    approval: required\n", "").replace(
        "    approval_timeout: 45s\n    on_reject: keep\n", f"    {field}\n"
    )
    path = tmp_path / "approval.yaml"
    path.write_text(text)
    with pytest.raises(TemplateLoadError) as info:
        load_template(path)
    name = field.split(":")[0]
    assert f"`{name}` needs `approval: required`" in str(info.value)
    assert str(info.value).startswith(f"{path}:7:")  # the step's line
