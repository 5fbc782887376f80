"""Rollback: a failure at any step of any template leaves the cluster as it was, each
change undone exactly once in reverse completion order — whether the failure callback
fires once, twice, early, or never."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from kubernaut.history import History
from kubernaut.history.migrations import MIGRATIONS
from kubernaut.operators.rollback import rollback_on_failure
from kubernaut.sandbox import SandboxCluster
from kubernaut.templates.loader import load_templates
from tests.conftest import REPO
from tests.dagruns.test_templates_run import AUTO_APPROVE, SCENARIOS

# Every step of the templates with a dag.test scenario here (the demo library) fails once under
# real Airflow; every shipped template's own fail_at scenarios run in tests/simulate.
TEMPLATES = {t.name: t for t in load_templates(REPO / "templates").templates if t.name in SCENARIOS}
CASES = [(name, step.name) for name in sorted(TEMPLATES) for step in TEMPLATES[name].steps]


def deployments(cluster: SandboxCluster) -> dict[str, Any]:
    """What the undoable actions change: each deployment's replicas and pod template, and
    whether each node takes new pods."""
    state: dict[str, Any] = {
        d["metadata"]["name"]: (d["spec"]["replicas"], d["spec"]["template"])
        for d in cluster.list("deployments", "demo")
    }
    for node in cluster.list("nodes"):
        state[f"node/{node['metadata']['name']}"] = bool(node["spec"].get("unschedulable"))
    return state


def journal(run_id: str) -> list[dict[str, Any]]:
    run = History().run(run_id)
    assert run is not None
    return list(run["undo"])


def api_memory(cluster: SandboxCluster) -> str:
    """The memory limit of demo/api's container, which the oom template raises."""
    dep = cluster.get("deployments", "demo", "api")
    assert dep is not None
    return str(dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"])


def run_failing(dagbag: Any, name: str, step: str, cluster: SandboxCluster) -> tuple[Any, dict[str, str]]:
    conf = {**SCENARIOS[name][0](cluster), "inject_failure": {"step": step}}
    dr = dagbag.dags["kubernaut_" + name.replace("-", "_")].test(
        run_conf=conf, mark_success_pattern=AUTO_APPROVE
    )
    return dr, {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


@pytest.mark.parametrize(("name", "step"), CASES, ids=[f"{n}:{s}" for n, s in CASES])
def test_failure_at_any_step_restores_the_cluster(
    name: str, step: str, dagbag: Any, cluster: SandboxCluster
) -> None:
    before = None

    def snapshot_then_prepare(c: SandboxCluster) -> dict[str, Any]:
        nonlocal before
        conf = SCENARIOS[name][0](c)
        before = deployments(c)
        return conf

    conf = {**snapshot_then_prepare(cluster), "inject_failure": {"step": step}}
    dr = dagbag.dags["kubernaut_" + name.replace("-", "_")].test(
        run_conf=conf, mark_success_pattern=AUTO_APPROVE
    )
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}

    assert states[step] in ("failed", "skipped"), states  # a step skipped by its condition cannot fail
    if states[step] == "skipped" and str(dr.state) == "success":
        # A branch for another kind of owner (e.g. the StatefulSet step when the pod's owner is
        # a Deployment): the failure never fired, the run is what it is without it.
        assert states["rollback"] == "skipped" and states["finalize"] == "success", states
        return
    assert str(dr.state) == "failed"
    if states[step] == "failed":
        assert states["finalize"] == "failed"
    assert states["rollback"] in ("success", "skipped")
    assert deployments(cluster) == before

    entries = journal(dr.run_id)
    assert all(e["undo_attempts"] == 1 for e in entries), entries  # exactly once
    # Pods a drain evicted (the node is uncordoned) or a restart replaced cannot come back:
    # those entries are not_restorable.
    one_way = {"kubernetes/drain_node", "kubernetes/restart_pod"}
    assert all(
        e["undo_status"] in ("applied", "skipped")
        or (e["undo_status"] == "not_restorable" and e["action"] in one_way)
        for e in entries
    ), entries
    run = History().run(dr.run_id)
    assert run is not None
    finished = {s["step"]: s["finished_at"] for s in run["steps"]}
    undone = [e["step"] for e in sorted(entries, key=lambda e: e["undone_at"])]
    assert undone == sorted(undone, key=lambda s: finished[s], reverse=True)  # reverse completion order
    if states[step] == "failed":
        partial = any(e["undo_status"] == "not_restorable" for e in entries)
        assert run["status"] == ("partially_rolled_back" if partial else "rolled_back")


def test_failed_run_after_raising_memory_restores_it_then_records(
    dagbag: Any, cluster: SandboxCluster
) -> None:
    dr, states = run_failing(dagbag, "oom-resource-exhaustion", "validate-no-oom-kills", cluster)
    assert states["raise-memory-limit"] == "success" and states["validate-no-oom-kills"] == "failed"
    assert states["rollback"] == "success" and states["finalize"] == "failed"
    assert api_memory(cluster) == "256Mi"
    [entry] = journal(dr.run_id)
    assert entry["step"] == "raise-memory-limit" and entry["prior_state"] == {
        "container": "api",
        "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}},
    }
    assert entry["undo_status"] == "applied" and entry["undo_attempts"] == 1


def _callback_context(dagbag: Any, dr: Any, task_id: str, try_number: int) -> dict[str, Any]:
    dag = dagbag.dags[dr.dag_id]
    task = dag.get_task(task_id)
    return {
        "dag": dag,
        "task": task,
        "dag_run": dr,
        "ti": SimpleNamespace(try_number=try_number, xcom_pull=lambda **_: None),
    }


def _without_callbacks(dag: Any) -> None:
    for task in dag.tasks:
        task.on_failure_callback = None


def test_no_callback_the_rollback_task_still_undoes(dagbag: Any, cluster: SandboxCluster) -> None:
    dag = dagbag.dags["kubernaut_oom_resource_exhaustion"]
    saved = {t.task_id: t.on_failure_callback for t in dag.tasks}
    _without_callbacks(dag)  # apache/airflow#63374: the callback may never fire
    try:
        dr, states = run_failing(dagbag, "oom-resource-exhaustion", "validate-no-oom-kills", cluster)
    finally:
        for task in dag.tasks:
            task.on_failure_callback = saved[task.task_id]
    assert states["rollback"] == "success"
    assert api_memory(cluster) == "256Mi"
    [entry] = journal(dr.run_id)
    assert entry["undo_attempts"] == 1


def test_callback_twice_and_callback_with_retries_left(dagbag: Any, cluster: SandboxCluster) -> None:
    dag = dagbag.dags["kubernaut_oom_resource_exhaustion"]
    saved = {t.task_id: (t.on_failure_callback, t.trigger_rule) for t in dag.tasks}
    _without_callbacks(dag)
    rollback_task = dag.get_task("rollback")
    # Keep the rollback task out of the way so only the callbacks act.
    rollback_task.trigger_rule = "all_success"
    try:
        dr, states = run_failing(dagbag, "oom-resource-exhaustion", "validate-no-oom-kills", cluster)
    finally:
        for task in dag.tasks:
            task.on_failure_callback, task.trigger_rule = saved[task.task_id]
    assert states["rollback"] == "upstream_failed"
    assert api_memory(cluster) == "512Mi"  # not yet undone
    task = dag.get_task("validate-no-oom-kills")
    original_retries = task.retries
    task.retries = 2
    try:
        # apache/airflow#65400: fired while retries remain -> must not roll back.
        rollback_on_failure(_callback_context(dagbag, dr, "validate-no-oom-kills", try_number=1))
        assert journal(dr.run_id)[0]["undo_status"] == "pending"
        assert api_memory(cluster) == "512Mi"
        # Last attempt: rolls back; the same callback again is a no-op.
        rollback_on_failure(_callback_context(dagbag, dr, "validate-no-oom-kills", try_number=3))
        rollback_on_failure(_callback_context(dagbag, dr, "validate-no-oom-kills", try_number=3))
    finally:
        task.retries = original_retries
    [entry] = journal(dr.run_id)
    assert entry["undo_status"] == "applied" and entry["undo_attempts"] == 1
    assert api_memory(cluster) == "256Mi"


def test_history_cli_lists_and_shows_a_rolled_back_run(
    dagbag: Any, cluster: SandboxCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    from kubernaut.history.cli import main

    dr, _ = run_failing(dagbag, "oom-resource-exhaustion", "validate-no-oom-kills", cluster)
    assert main(["migrate"]) == 0
    assert f"history schema at version {MIGRATIONS[-1][0]} (applied: none)" in capsys.readouterr().out
    assert main(["list", "--template", "oom-resource-exhaustion", "--status", "rolled_back", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert dr.run_id in {r["dag_run_id"] for r in rows}
    assert all(r["status"] == "rolled_back" for r in rows)
    assert main(["show", dr.run_id]) == 0
    out = capsys.readouterr().out
    assert "status rolled_back validate-no-oom-kills failed" in out
    assert "raise-memory-limit" in out and "applied  attempts=1" in out
    assert main(["show", "no-such-run"]) == 1
