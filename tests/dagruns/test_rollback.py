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


class _StartedByTheScheduler:
    """What the triggerer hands a trigger of a task it started: the task's runtime instance
    (its DAG and run ids), whose ``get_task_states`` asks the Execution API; here the same
    query on the metadata DB that API runs (the live stack: tests/triggers/test_live_deferral)."""

    def __init__(self, dag_id: str, run_id: str) -> None:
        self.dag_id, self.run_id, self.task_id = dag_id, run_id, "rollback"

    @staticmethod
    def get_task_states(
        dag_id: str, task_ids: list[str] | None = None, run_ids: list[str] | None = None, **_: Any
    ) -> dict[str, dict[str, Any]]:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session

        found: dict[str, dict[str, Any]] = {}
        with create_session() as session:
            rows = session.query(TaskInstance).filter(
                TaskInstance.dag_id == dag_id,
                TaskInstance.task_id.in_(task_ids or []),
                TaskInstance.run_id.in_(run_ids or []),
            )
            for ti in rows:
                found.setdefault(ti.run_id, {})[ti.task_id] = ti.state
        return found


def _decided(dag: Any, ti: Any) -> Any:
    """The one event of the rollback task's trigger as the scheduler starts it."""
    import asyncio

    from kubernaut.triggers.rollback import RollbackCheckTrigger

    args = dag.get_task("rollback").start_trigger_args
    trigger = RollbackCheckTrigger(**args.trigger_kwargs)
    if ti is not None:
        trigger.task_instance = ti

    async def events() -> list[Any]:
        return [e async for e in trigger.run()]

    [event] = asyncio.run(events())
    return event


def test_the_triggerer_skips_the_rollback_of_a_run_where_nothing_failed(
    dagbag: Any, cluster: SandboxCluster
) -> None:
    """The scheduler starts ``rollback`` in the triggerer: nothing failed -> ``skipped`` there,
    as the worker would (no process for it); a failed step, an approval gate, or no run to read
    -> handed to a worker, which decides from the same states and undoes."""
    from airflow.triggers.base import TaskSkippedEvent

    from kubernaut.triggers.rollback import IN_WORKER, ROLLBACK_TRIGGER

    dag = dagbag.dags["kubernaut_oom_resource_exhaustion"]
    task = dag.get_task("rollback")
    args = task.start_trigger_args
    assert task.start_from_trigger and args is not None and args.trigger_cls == ROLLBACK_TRIGGER
    steps = [t.task_id for t in dag.tasks if t.task_id not in ("rollback", "finalize")]
    assert args.trigger_kwargs == {"steps": steps, "gates": []}
    assert args.next_method == "execute_complete"

    failed, states = run_failing(dagbag, "oom-resource-exhaustion", "validate-no-oom-kills", cluster)
    assert states["validate-no-oom-kills"] == "failed" and states["rollback"] == "success", states
    event = _decided(dag, _StartedByTheScheduler(dag.dag_id, failed.run_id))
    assert not isinstance(event, TaskSkippedEvent)
    assert event.payload["status"] == IN_WORKER
    assert "validate-no-oom-kills failed" in event.payload["reason"]

    cluster.clear_faults()  # rolled back to the limit that is too low: the fault again, anew
    green = dag.test(run_conf=SCENARIOS["oom-resource-exhaustion"][0](cluster))
    states = {ti.task_id: str(ti.state) for ti in green.get_task_instances()}
    assert states["rollback"] == "skipped" and str(green.state) == "success", states
    for _ in range(2):  # a triggerer restart: the same decision
        assert isinstance(_decided(dag, _StartedByTheScheduler(dag.dag_id, green.run_id)), TaskSkippedEvent)

    event = _decided(dag, None)  # the triggerer handed no run: a worker decides
    assert event.payload["status"] == IN_WORKER and "no run" in event.payload["reason"]
    gated = dagbag.dags["kubernaut_node_not_ready_replace"]
    assert gated.get_task("rollback").start_trigger_args.trigger_kwargs["gates"] == [
        "approve-drain-node",
        "approve-replace-node",
    ]
    event = _decided(gated, _StartedByTheScheduler(gated.dag_id, green.run_id))
    assert event.payload["status"] == IN_WORKER and "approval gates" in event.payload["reason"]
