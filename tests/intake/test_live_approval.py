"""Approval gates on the live stack (standalone, LocalExecutor, PostgreSQL): a person's
Reject and an unanswered request are outcomes that must show, never a green run.

- Reject: the gated step and every later step are skipped, the cordon made before the gate is
  rolled back (`on_reject` defaults to rollback), the run is red and the history says `declined`.
- No answer within `approval_timeout`: the gate fails, the run fails and rolls back.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest

from kubernaut.demo import wait
from kubernaut.live_stack import PG_SERVER, LiveStack
from tests.conftest import REPO

NODE = "sandbox-node-1"
PROBE = """
name: approval-probe
description: Cordon a node, then a read-only step behind an approval that nobody answers
alert_types: [ApprovalProbe]
configuration: {timeout: 2m}
steps:
  - name: cordon-node
    action: {type: kubernetes, action: cordon_node, parameters: {node: "{{ alert.resource }}"}}
  - name: inspect-node
    approval: required
    approval_timeout: 4s
    action: {type: kubernetes, action: collect_diagnostics,
             parameters: {kind: Node, name: "{{ alert.resource }}", tail_lines: 1}}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    work = Path(tmp_path_factory.mktemp("live-approval"))
    templates = work / "templates"
    shutil.copytree(REPO / "templates", templates)
    (templates / "approval-probe.yaml").write_text(PROBE)
    live = LiveStack(work / "stack", templates_dir=templates).start()
    try:
        yield live
    finally:
        live.stop()


def _start_run(api: httpx.Client, dag: str, run_id: str, alertname: str) -> str:
    wait(lambda: api.get(f"/dags/{dag}").status_code == 200, 300, f"DAG {dag} to be parsed")
    api.patch(f"/dags/{dag}", json={"is_paused": False}).raise_for_status()
    alert = {"status": "firing", "labels": {"alertname": alertname, "node": NODE}, "fingerprint": run_id}
    body = {"dag_run_id": run_id, "logical_date": None, "conf": {"alert": alert}}
    api.post(f"/dags/{dag}/dagRuns", json=body).raise_for_status()
    return f"/dags/{dag}/dagRuns/{run_id}"


def _finished(api: httpx.Client, run: str, timeout: float) -> str:
    state: str = wait(
        lambda: (s := api.get(run).json()["state"]) in ("success", "failed") and s,
        timeout,
        f"run {run} to finish",
        interval=1,
    )
    return state


def _task_states(api: httpx.Client, run: str) -> dict[str, Any]:
    tis = api.get(f"{run}/taskInstances").json()["task_instances"]
    return {t["task_id"]: t["state"] for t in tis}


def _history(stack: LiveStack, run_id: str) -> tuple[str, list[tuple[str, str]]]:
    with psycopg2.connect(stack.history_uri()) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, status FROM kubernaut_runs WHERE dag_run_id = %s", (run_id,))
        row_id, status = cur.fetchone()
        cur.execute("SELECT step, undo_status FROM kubernaut_undo_journal WHERE run_id = %s", (row_id,))
        return status, sorted(cur.fetchall())


def _unschedulable(stack: LiveStack) -> bool:
    assert stack.sandbox is not None
    return bool(stack.sandbox.get(f"/api/v1/nodes/{NODE}")["spec"].get("unschedulable"))


def test_reject_declines_the_run_and_rolls_back_the_cordon(stack: LiveStack) -> None:
    assert stack.airflow is not None
    api = stack.airflow.client()
    run_id = "approval-reject-1"
    run = _start_run(api, "kubernaut_node_not_ready", run_id, "KubeNodeNotReady")
    wait(
        lambda: _task_states(api, run).get("approve-drain-node") == "awaiting_input",
        300,  # the run's first steps on a fresh stack: minutes on a loaded CI machine
        "the approval request",
    )
    assert _unschedulable(stack)  # cordoned before the gate
    answer = api.patch(
        f"{run}/taskInstances/approve-drain-node/-1/hitlDetails", json={"chosen_options": ["Reject"]}
    )
    assert answer.status_code == 200, answer.text

    assert _finished(api, run, 360) == "failed"  # declined is not green
    states = _task_states(api, run)
    assert states["approve-drain-node"] == "success"
    assert states["drain-node"] == "skipped" and states["node-diagnostics"] == "skipped"
    assert states["rollback"] == "success" and states["finalize"] == "failed"
    assert not _unschedulable(stack), "the cordon made before the rejected gate was not rolled back"
    assert _history(stack, run_id) == ("declined", [("cordon-node", "applied")])


def test_unanswered_approval_fails_the_run_and_rolls_back(stack: LiveStack) -> None:
    assert stack.airflow is not None
    api = stack.airflow.client()
    run_id = "approval-timeout-1"
    run = _start_run(api, "kubernaut_approval_probe", run_id, "ApprovalProbe")

    assert _finished(api, run, 360) == "failed"
    states = _task_states(api, run)
    assert states["cordon-node"] == "success"
    assert states["approve-inspect-node"] == "failed"  # timed out, not asked again on retry
    assert states["inspect-node"] == "upstream_failed"
    assert states["rollback"] == "success" and states["finalize"] == "failed"
    assert not _unschedulable(stack)
    assert _history(stack, run_id) == ("rolled_back", [("cordon-node", "applied")])


def test_an_answered_gate_failed_by_airflow_reuses_the_answer_on_retry(stack: LiveStack) -> None:
    """apache/airflow#67287/#72716: the scheduler may fail a gate that was just answered (a stale
    executor event from the process that parked it). Modelled exactly: the answer recorded on
    the gate's HITL detail and the gate put up for retry, as the scheduler's failure handling
    does. The retry must resume with that answer, never ask a second time."""
    assert stack.airflow is not None and stack.sandbox is not None
    api = stack.airflow.client()
    run_id = "approval-retry-1"
    run = _start_run(api, "kubernaut_node_not_ready", run_id, "KubeNodeNotReady")
    wait(
        lambda: _task_states(api, run).get("approve-drain-node") == "awaiting_input",
        300,  # the run's first steps on a fresh stack: minutes on a loaded CI machine
        "the approval request",
    )
    with psycopg2.connect(f"{PG_SERVER}/{stack.databases[0]}") as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM task_instance WHERE run_id = %s AND task_id = 'approve-drain-node'", (run_id,)
        )
        (ti_id,) = cur.fetchone()
        cur.execute(
            "UPDATE hitl_detail SET chosen_options = %s, params_input = '{}', responded_at = now() "
            "WHERE ti_id = %s",
            ('["Approve"]', ti_id),
        )
        cur.execute(
            "UPDATE task_instance SET state = 'up_for_retry', end_date = now(), next_method = NULL, "
            "next_kwargs = NULL, trigger_timeout = NULL WHERE id = %s",
            (ti_id,),
        )

    assert _finished(api, run, 360) == "success"
    states = _task_states(api, run)
    assert states["drain-node"] == "success" and states["rollback"] == "skipped"
    gate = api.get(f"{run}/taskInstances/approve-drain-node").json()
    assert gate["try_number"] == 2 and gate["state"] == "success"
    assert _history(stack, run_id)[0] == "success"
