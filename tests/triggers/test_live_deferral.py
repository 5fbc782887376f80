"""Waiting steps on the live stack (airflow standalone: LocalExecutor, PostgreSQL, a real
triggerer), the sandbox keeping rollouts slow (a new pod is Ready after 10 s):

- a step waiting for its rollout is ``deferred``: it holds no worker slot;
- the triggerer SIGKILLed mid-wait and started again: the run finishes green and the
  deployment was changed once (one new revision), the step never ran its change again;
- ``rollback`` starts in the triggerer: a green run's ends there (no worker process), a run
  whose step failed goes on to a worker, which undoes the change.
"""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

import kubernaut.live_stack as live_stack
from kubernaut.demo import wait
from kubernaut.live_stack import LiveStack
from kubernaut.local_stack import SandboxProcess, free_port, stop_process_tree

DAG = "kubernaut_rollout_restart"
POD_READY_DELAY = 10.0
# A dead triggerer's triggers go to another one once its heartbeat is this many seconds old.
TRIGGERER_ENV = {
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    work = Path(tmp_path_factory.mktemp("live-deferral"))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in TRIGGERER_ENV.items():
            patch.setenv(name, value)  # airflow standalone passes its environment on
        patch.setattr(
            live_stack, "SandboxProcess", functools.partial(SandboxProcess, pod_ready_delay=POD_READY_DELAY)
        )
        live = LiveStack(work / "stack").start()
    try:
        yield live
    finally:
        live.stop()


def api_client(stack: LiveStack) -> httpx.Client:
    assert stack.airflow is not None
    return stack.airflow.client()


def deployment(stack: LiveStack, name: str) -> dict[str, Any]:
    assert stack.sandbox is not None
    found: dict[str, Any] = stack.sandbox.get(f"/apis/apps/v1/namespaces/demo/deployments/{name}")
    return found


def revision(stack: LiveStack, name: str) -> str:
    return str(deployment(stack, name)["metadata"]["annotations"]["deployment.kubernetes.io/revision"])


def rolled_out(stack: LiveStack, name: str) -> bool:
    dep = deployment(stack, name)
    status, want = dep.get("status") or {}, dep["spec"]["replicas"]
    return bool(
        status.get("observedGeneration", 0) >= dep["metadata"]["generation"]
        and status.get("updatedReplicas") == want == status.get("readyReplicas") == status.get("replicas")
    )


def start_run(
    api: httpx.Client, stack: LiveStack, name: str, run_id: str, inject: dict[str, str] | None = None
) -> str:
    wait(
        lambda: (
            (deployment(stack, name).get("status") or {}).get("readyReplicas")
            == deployment(stack, name)["spec"]["replicas"]
        ),
        120,
        f"{name} Ready",
    )
    wait(lambda: api.get(f"/dags/{DAG}").status_code == 200, 120, f"DAG {DAG} to be parsed")
    api.patch(f"/dags/{DAG}", json={"is_paused": False}).raise_for_status()
    alert = {
        "status": "firing",
        "labels": {"alertname": "KubernautRolloutRestart", "namespace": "demo", "deployment": name},
        "fingerprint": run_id,
    }
    conf: dict[str, Any] = {"alert": alert, **({"inject_failure": inject} if inject else {})}
    body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
    api.post(f"/dags/{DAG}/dagRuns", json=body).raise_for_status()
    return f"/dags/{DAG}/dagRuns/{run_id}"


def task_states(api: httpx.Client, run: str) -> dict[str, str]:
    tis = api.get(f"{run}/taskInstances").json()["task_instances"]
    return {t["task_id"]: t["state"] for t in tis}


def finished(api: httpx.Client, run: str, timeout: float = 240) -> str:
    state: str = wait(
        lambda: (s := api.get(run).json()["state"]) in ("success", "failed") and s,
        timeout,
        f"{run} to finish",
    )
    return state


def test_a_waiting_step_is_deferred_and_holds_no_worker_slot(stack: LiveStack) -> None:
    api = api_client(stack)
    run = start_run(api, stack, "web", "deferral-state-1")
    wait(lambda: task_states(api, run).get("rollout-restart") == "deferred", 180, "rollout-restart deferred")
    states = task_states(api, run)
    assert "running" not in states.values() and "queued" not in states.values(), states
    assert revision(stack, "web") == "2"
    running = api.get("/dags/~/dagRuns/~/taskInstances", params={"state": "running"}).json()
    assert running["total_entries"] == 0, running  # no worker slot in use anywhere
    assert finished(api, run) == "success"
    ti = api.get(f"{run}/taskInstances/rollout-restart").json()
    assert ti["try_number"] == 1 and ti["state"] == "success"
    # Nothing failed: the rollback task was decided and ended in the triggerer.
    rollback = api.get(f"{run}/taskInstances/rollback").json()
    assert rollback["state"] == "skipped", rollback
    assert not rollback["hostname"] and rollback["pid"] is None, rollback  # no worker process


def restarted_at(stack: LiveStack, name: str) -> str | None:
    annotations = deployment(stack, name)["spec"]["template"]["metadata"].get("annotations") or {}
    return annotations.get("kubectl.kubernetes.io/restartedAt")


def test_a_failed_runs_rollback_goes_from_the_triggerer_to_a_worker_that_undoes(stack: LiveStack) -> None:
    api = api_client(stack)
    wait(lambda: rolled_out(stack, "web"), 120, "the rollout of web")
    before = restarted_at(stack, "web")
    run = start_run(api, stack, "web", "rollback-in-worker-1", inject={"step": "validate-rollout"})
    assert finished(api, run) == "failed", task_states(api, run)
    states = task_states(api, run)
    assert states["validate-rollout"] == "failed" and states["rollback"] == "success", states
    rollback = api.get(f"{run}/taskInstances/rollback").json()
    assert rollback["hostname"] and rollback["pid"], rollback  # it ran in a worker
    result = api.get(f"{run}/taskInstances/rollback/xcomEntries/return_value").json()["value"]
    # (The failed step's failure callback may have undone it first: the journal undoes once.)
    assert result["failed_steps"] == ["validate-rollout"] and not result["failed"], result
    assert restarted_at(stack, "web") == before  # the restart's annotation is as it was


def triggerer_tree(stack: LiveStack) -> list[psutil.Process]:
    assert stack.airflow is not None and stack.airflow.proc is not None
    for child in psutil.Process(stack.airflow.proc.pid).children(recursive=True):
        try:
            if child.cmdline()[1:3] == [str(Path(sys.executable).with_name("airflow")), "triggerer"] or (
                "triggerer" in child.cmdline() and child.parent().pid == stack.airflow.proc.pid
            ):
                return [child, *child.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return []


def test_triggerer_killed_mid_wait_then_restarted_finishes_the_run_changing_once(
    stack: LiveStack, tmp_path: Path
) -> None:
    api = api_client(stack)
    run = start_run(api, stack, "api", "deferral-kill-1")
    wait(lambda: task_states(api, run).get("rollout-restart") == "deferred", 180, "rollout-restart deferred")
    tree = triggerer_tree(stack)
    assert tree, "no triggerer process found under airflow standalone"
    for process in tree:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(tree, timeout=10)
    assert task_states(api, run)["rollout-restart"] == "deferred"  # killed mid-wait
    assert revision(stack, "api") == "2"
    # The rollout completes with no triggerer to see it: the step stays deferred.
    wait(lambda: rolled_out(stack, "api"), 120, "the rollout of api")
    assert task_states(api, run)["rollout-restart"] == "deferred"

    assert stack.airflow is not None
    env = {
        **stack.airflow.environment(),
        **TRIGGERER_ENV,
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    with open(tmp_path / "triggerer.log", "wb") as log:
        again = subprocess.Popen(
            [str(Path(sys.executable).with_name("airflow")), "triggerer"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        assert finished(api, run) == "success", task_states(api, run)
    finally:
        stop_process_tree(again)
    ti = api.get(f"{run}/taskInstances/rollout-restart").json()
    assert ti["try_number"] == 1 and ti["state"] == "success"  # resumed, never re-run
    assert revision(stack, "api") == "2"  # the rollout restart was made once
