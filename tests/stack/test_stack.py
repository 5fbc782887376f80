"""The production shape as processes (``kubernaut stack``: CeleryExecutor on Redis, separate
api-server, scheduler, dag-processor, triggerer, two Celery workers, Alertmanager), one stack
for the module:

- the demo scenario: a sandbox fault, its alert through Alertmanager to the intake, the run on
  the Celery workers, fault fixed;
- kill -9 of the worker running a mutating step (``rotate_secret``, which waits for its
  consumers' rollout in its worker slot): the step is retried on the other worker, the secret
  is rotated and the deployment restarted once, the run succeeds;
- kill -9 of the scheduler together with that step's worker, scheduler restarted: the same,
  and the step runs again within 30 s of the new scheduler being up (Airflow's recovery
  settings of ``kubernaut.stack.settings``; with Airflow's defaults it took 324 s).
"""

from __future__ import annotations

import base64
import datetime
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg2
import pytest

from kubernaut.demo import deployment_health, wait
from kubernaut.live_stack import am_alert
from kubernaut.stack.processes import Component
from kubernaut.stack.stack import REPO, Stack

DEMO_DAG = "kubernaut_deployment_replica_mismatch"
ROTATION_DAG = "kubernaut_stack_secret_rotation"
ROTATION_TEMPLATE = """\
name: stack-secret-rotation
description: Rotate a secret and restart its consumer (the step waits in its worker slot)
alert_types: [KubernautStackSecretRotation]
configuration:
  timeout: 5m
steps:
  - name: rotate-secret
    action: {type: kubernetes, action: rotate_secret,
             parameters: {namespace: "{{ alert.namespace }}", secret: "{{ alert.labels.secret }}",
                          data: {token: "{{ alert.labels.token }}"},
                          consumers: [{kind: Deployment, name: "{{ alert.labels.deployment }}"}]}}
    retries: 3
    retry_delay: 1s
  - name: note-done
    action: {type: custom, action: log, parameters: {message: "rotated"}}
"""
# A new pod is Ready after this long: rotate-secret holds its worker slot for the rollout.
POD_READY_DELAY = 4.0
RESUME_LIMIT = 30.0
RECOVERY: dict[str, float] = {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = Path(tmp_path_factory.mktemp("stack"))
    templates = work / "templates"
    shutil.copytree(REPO / "templates", templates)
    (templates / "stack-secret-rotation.yaml").write_text(ROTATION_TEMPLATE)
    running = Stack(
        work / "stack",
        workers=2,
        concurrency=2,
        redis_db=secrets.randbelow(15) + 1,
        templates_dir=templates,
        pod_ready_delay=POD_READY_DELAY,
    ).start()
    pids: set[int] = set()
    try:
        yield running
    finally:
        for component in running.components.values():
            if component.running():
                pids.update(p.pid for p in [psutil.Process(component.pid), *_tree(component)])
        running.stop()
        left = [
            p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        assert not left, f"processes left behind after stop: {left}"
    if RECOVERY:
        print("\nrecovery:", ", ".join(f"{k} {v:.1f}s" for k, v in RECOVERY.items()))


def _tree(component: Component) -> list[psutil.Process]:
    try:
        return list(psutil.Process(component.pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def unpaused(stack: Stack, dag: str) -> httpx.Client:
    api = stack.client()
    wait(lambda: api.get(f"/dags/{dag}").status_code == 200, 180, f"DAG {dag} to be parsed")
    api.patch(f"/dags/{dag}", json={"is_paused": False}).raise_for_status()
    return api


def run_state(api: httpx.Client, run: str, timeout: float = 240) -> str:
    """The remediation's outcome: the run's final state, or ``finalize``'s once that is done
    (an effectiveness assessment after it may keep the run itself running for minutes)."""

    def outcome() -> str | None:
        state = str(api.get(run).json()["state"])
        if state in ("success", "failed"):
            return state
        final = task(api, run, "finalize").get("state")
        return str(final) if final in ("success", "failed", "upstream_failed") else None

    state: str = wait(outcome, timeout, f"{run} to finish", interval=1)
    return state


def task(api: httpx.Client, run: str, task_id: str) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"{run}/taskInstances/{task_id}").json()
    return found


def deployment(stack: Stack, name: str) -> dict[str, Any]:
    assert stack.sandbox is not None
    found: dict[str, Any] = stack.sandbox.get(f"/apis/apps/v1/namespaces/demo/deployments/{name}")
    return found


def restarted_at(stack: Stack, name: str) -> str | None:
    annotations = deployment(stack, name)["spec"]["template"]["metadata"].get("annotations") or {}
    return annotations.get("kubectl.kubernetes.io/restartedAt")


def revision(stack: Stack, name: str) -> int:
    return int(deployment(stack, name)["metadata"]["annotations"]["deployment.kubernetes.io/revision"])


def ready(stack: Stack, name: str) -> bool:
    dep = deployment(stack, name)
    return bool((dep.get("status") or {}).get("readyReplicas") == dep["spec"]["replicas"])


def secret_token(stack: Stack, name: str) -> str:
    assert stack.sandbox is not None
    data = stack.sandbox.get(f"/api/v1/namespaces/demo/secrets/{name}")["data"]
    return base64.b64decode(data["token"]).decode()


def start_rotation(stack: Stack, deployment_name: str, tag: str) -> tuple[httpx.Client, str, str]:
    """A secret consumed by the deployment, and a run rotating it: (api, run path, new token)."""
    assert stack.sandbox is not None
    secret, token = f"stack-{tag}", secrets.token_hex(8)
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret, "namespace": "demo"},
        "data": {"token": base64.b64encode(b"old").decode()},
    }
    httpx.post(
        f"{stack.sandbox.url}/api/v1/namespaces/demo/secrets", json=body, timeout=10
    ).raise_for_status()
    api = unpaused(stack, ROTATION_DAG)
    wait(lambda: ready(stack, deployment_name), 120, f"{deployment_name} Ready")
    labels = {
        "alertname": "KubernautStackSecretRotation",
        "namespace": "demo",
        "deployment": deployment_name,
        "secret": secret,
        "token": token,
    }
    alert = {"status": "firing", "labels": labels, "fingerprint": tag}
    run_id = f"stack-{tag}"
    run: dict[str, Any] = {"dag_run_id": run_id, "logical_date": None, "conf": {"alert": alert}}
    api.post(f"/dags/{ROTATION_DAG}/dagRuns", json=run).raise_for_status()
    return api, f"/dags/{ROTATION_DAG}/dagRuns/{run_id}", token


def worker_running(stack: Stack, pid: int) -> str:
    """The name of the Celery worker whose process tree holds ``pid`` ('' if none)."""
    for name in stack.worker_names:
        component = stack.components[name]
        if component.running() and pid in {p.pid for p in _tree(component)}:
            return name
    return ""


def in_its_wait(stack: Stack, api: httpx.Client, run: str, name: str, before: str | None) -> str:
    """Wait until rotate-secret runs on a worker and has restarted ``name`` (its change is made,
    it waits for the rollout in its slot); the worker it runs on."""

    def holding() -> str:
        ti = task(api, run, "rotate-secret")
        if ti.get("state") != "running" or not ti.get("pid") or restarted_at(stack, name) == before:
            return ""
        return worker_running(stack, int(ti["pid"]))

    found: str = wait(holding, 360, "rotate-secret running with its change made", interval=0.2)
    return found


def steps_row(stack: Stack, run_id: str, step: str) -> tuple[str, int, int]:
    """(status, attempts, undo-journal rows) of a step in the remediation history."""
    with psycopg2.connect(stack.history_uri) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT s.status, s.attempts, (SELECT count(*) FROM kubernaut_undo_journal j "
            "WHERE j.run_id = r.id AND j.step = s.step) FROM kubernaut_steps s "
            "JOIN kubernaut_runs r ON r.id = s.run_id WHERE r.dag_run_id = %s AND s.step = %s",
            (run_id, step),
        )
        row = cur.fetchone()
    conn.close()
    assert row is not None, f"no history of step {step} in run {run_id}"
    return str(row[0]), int(row[1]), int(row[2])


def test_demo_scenario_through_alertmanager_runs_on_celery(stack: Stack) -> None:
    assert stack.sandbox is not None and stack.alertmanager is not None
    api = unpaused(stack, DEMO_DAG)
    wait(lambda: deployment_health(stack.sandbox, "demo", "web")[1] == 3, 60, "demo/web Ready")
    stack.sandbox.inject_fault("crashloop", "demo", "web")
    wait(lambda: deployment_health(stack.sandbox, "demo", "web")[2] > 0, 60, "the fault to show")
    labels = {
        "alertname": "KubeDeploymentReplicasMismatch",
        "namespace": "demo",
        "deployment": "web",
        "severity": "warning",
    }
    starts = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    stack.alertmanager.post_alerts([am_alert(labels, starts)])
    runs = f"/dags/{DEMO_DAG}/dagRuns"
    run = wait(lambda: (api.get(runs).json()["dag_runs"] or [None])[0], 90, "a run from Alertmanager", 0.5)
    assert run["dag_run_id"].startswith("alert__")
    path = f"{runs}/{run['dag_run_id']}"
    assert run_state(api, path) == "success"
    desired, ready_pods, crashing = deployment_health(stack.sandbox, "demo", "web")
    assert (ready_pods, crashing) == (desired, 0), "fault not fixed"
    tis = api.get(f"{path}/taskInstances").json()["task_instances"]
    ran = [t for t in tis if t["state"] == "success"]
    assert ran and all(t["executor"] in (None, "CeleryExecutor") for t in ran), tis
    # Nothing failed: its rollback was decided and skipped in the triggerer, no Celery task.
    rollback = task(api, path, "rollback")
    assert rollback["state"] == "skipped" and not rollback["hostname"] and rollback["pid"] is None, rollback
    # Every task went through Celery: one message per task, each received by a worker.
    received = sum(
        stack.components[n].log.read_text(errors="replace").count("execute_workload")
        for n in stack.worker_names
    )
    assert received >= len(ran), f"{received} Celery task messages for {len(ran)} tasks"


def test_worker_killed_mid_change_retries_elsewhere_changing_once(stack: Stack) -> None:
    before = restarted_at(stack, "api")
    first_revision = revision(stack, "api")
    api, run, token = start_rotation(stack, "api", f"w{secrets.token_hex(3)}")
    victim = in_its_wait(stack, api, run, "api", before)
    changed = restarted_at(stack, "api")
    assert revision(stack, "api") == first_revision + 1
    killed_at = time.monotonic()
    stack.components[victim].kill()
    assert task(api, run, "rotate-secret")["try_number"] == 1

    def retried_on() -> str:
        ti = task(api, run, "rotate-secret")
        if ti["try_number"] < 2 or ti["state"] not in ("running", "success"):
            return ""
        if ti["state"] == "running" and ti.get("pid"):
            return worker_running(stack, int(ti["pid"])) or "?"
        # Already done (a retry on a preloaded worker takes ~0.3 s, less than one poll on a
        # loaded machine): the worker whose log ran this try's workload.
        logs = {n: stack.components[n].log.read_text(errors="replace") for n in stack.worker_names}
        return next((n for n, text in logs.items() if ti["id"] in text), "")

    other = wait(retried_on, 300, "rotate-secret retried", interval=0.2)
    RECOVERY["worker kill -> step running again"] = time.monotonic() - killed_at
    stack.worker(int(victim.rsplit("-", 1)[1])).start()  # back to two workers for the next test
    assert other not in ("?", victim), f"retried on {other}, killed {victim}"
    assert run_state(api, run) == "success"
    assert restarted_at(stack, "api") == changed  # restarted once: the retry did not restart again
    assert revision(stack, "api") == first_revision + 1
    assert secret_token(stack, f"stack-{run.rsplit('stack-', 1)[1]}") == token
    status, attempts, journal = steps_row(stack, run.rsplit("/", 1)[1], "rotate-secret")
    assert (status, attempts, journal) == ("success", 2, 1)


def test_scheduler_killed_with_the_steps_worker_resumes_within_30s_changing_once(stack: Stack) -> None:
    wait(lambda: all(stack.components[n].running() for n in stack.worker_names), 120, "two workers")
    before = restarted_at(stack, "web")
    first_revision = revision(stack, "web")
    api, run, token = start_rotation(stack, "web", f"s{secrets.token_hex(3)}")
    victim = in_its_wait(stack, api, run, "web", before)
    changed = restarted_at(stack, "web")
    stack.components["scheduler"].kill()
    stack.components[victim].kill()
    killed_at = time.monotonic()
    scheduler = stack.scheduler().start()
    scheduler.wait_ready(180)  # its health check: the new scheduler job heartbeats
    up = time.monotonic()

    def resumed() -> bool:
        ti = task(api, run, "rotate-secret")
        return bool(ti["try_number"] >= 2 and ti["state"] in ("running", "success"))

    wait(resumed, 180, "rotate-secret to run again", interval=0.2)
    # From the new scheduler up (the start of a process is the machine's, not a setting) to
    # the step running again on a live worker.
    resume = time.monotonic() - up
    RECOVERY["scheduler + worker kill -> step running again"] = time.monotonic() - killed_at
    RECOVERY["scheduler restart -> scheduler up"] = up - killed_at
    RECOVERY["scheduler up -> step running again"] = resume
    stack.worker(int(victim.rsplit("-", 1)[1])).start()
    assert run_state(api, run) == "success"
    assert restarted_at(stack, "web") == changed
    assert revision(stack, "web") == first_revision + 1
    assert secret_token(stack, f"stack-{run.rsplit('stack-', 1)[1]}") == token
    status, attempts, journal = steps_row(stack, run.rsplit("/", 1)[1], "rotate-secret")
    assert (status, attempts, journal) == ("success", 2, 1)
    assert resume < RESUME_LIMIT, f"the run resumed {resume:.1f}s after the new scheduler was up"
