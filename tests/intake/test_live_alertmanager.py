"""End to end on the live stack: real Alertmanager -> plugin on ``airflow standalone``
(LocalExecutor, PostgreSQL) -> one run that fixes an injected fault in the sandbox cluster.
Redeliveries (Alertmanager's repeat, and 20 concurrent direct posts) add no run."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest

from kubernaut.demo import deployment_health, wait
from kubernaut.live_stack import LiveStack, am_alert

DAG = "kubernaut_deployment_replica_mismatch"
LABELS = {
    "alertname": "KubeDeploymentReplicasMismatch",
    "namespace": "demo",
    "deployment": "web",
    "severity": "warning",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    live = LiveStack(Path(tmp_path_factory.mktemp("live"))).start()
    try:
        yield live
    finally:
        live.stop()


def runs(api: httpx.Client) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api.get(f"/dags/{DAG}/dagRuns").json()["dag_runs"]
    return result


def test_one_alert_one_run_fixes_the_fault_and_redelivery_adds_none(stack: LiveStack) -> None:
    assert stack.airflow is not None and stack.sandbox is not None and stack.alertmanager is not None
    api = stack.airflow.client()
    wait(lambda: api.get(f"/dags/{DAG}").status_code == 200, 120, "DAGs to be parsed")
    api.patch(f"/dags/{DAG}", json={"is_paused": False}).raise_for_status()
    wait(lambda: deployment_health(stack.sandbox, "demo", "web")[1] == 3, 60, "demo/web Ready")
    stack.sandbox.inject_fault("crashloop", "demo", "web")
    wait(lambda: deployment_health(stack.sandbox, "demo", "web")[2] > 0, 60, "the fault to show")

    starts = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    stack.alertmanager.post_alerts([am_alert(LABELS, starts)])
    run = wait(lambda: (runs(api) or [None])[0], 60, "a run launched through Alertmanager", interval=0.5)
    assert run["dag_run_id"].startswith("alert__")
    assert run["conf"]["alert"]["labels"] == LABELS

    state = wait(
        lambda: (
            (s := api.get(f"/dags/{DAG}/dagRuns/{run['dag_run_id']}").json()["state"])
            in ("success", "failed")
            and s
        ),
        240,
        "the remediation run",
        interval=2,
    )
    assert state == "success"
    desired, ready, crashing = deployment_health(stack.sandbox, "demo", "web")
    assert (ready, crashing) == (desired, 0), "fault not fixed"

    # Alertmanager repeats the still-firing alert every few seconds: let it deliver again.
    stack.alertmanager.post_alerts([am_alert(LABELS, starts)])
    time.sleep(15)

    # The same alert re-posted straight to the webhook, 20 times at once.
    fired = stack.alertmanager.alerts()[0]
    body = {
        "version": "4",
        "receiver": "kubernaut",
        "status": "firing",
        "groupLabels": {},
        "commonLabels": LABELS,
        "commonAnnotations": {},
        "externalURL": stack.alertmanager.url,
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": fired["labels"],
                "annotations": fired["annotations"],
                "startsAt": fired["startsAt"],
                "endsAt": fired["endsAt"],
                "generatorURL": "",
                "fingerprint": fired["fingerprint"],
            }
        ],
    }
    headers = {"Authorization": f"Bearer {stack.token}"}

    def post(_: int) -> httpx.Response:
        return httpx.post(stack.webhook_url, json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, range(20)))
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers if a.status_code != 200]
    assert {a.json()["decisions"][0]["decision"] for a in answers} == {"duplicate"}
    assert len(runs(api)) == 1

    with psycopg2.connect(stack.history_uri()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT decision, count(*) FROM kubernaut_alert_decisions WHERE fingerprint = %s "
            "GROUP BY decision",
            (fired["fingerprint"],),
        )
        recorded = dict(cur.fetchall())
    assert recorded.get("triggered") == 1, recorded
    assert recorded.get("duplicate", 0) >= 20, recorded

    unauthorized = httpx.post(stack.webhook_url, content=json.dumps(body), timeout=10)
    assert unauthorized.status_code == 401


def test_failed_run_rolls_back_on_the_live_stack(stack: LiveStack) -> None:
    """Rollback on the full system (scheduler, LocalExecutor workers, PostgreSQL): a run
    whose last step fails undoes the raised memory limit, shows the rollback task, ends
    failed, and the history says rolled_back with the undo applied once."""
    assert stack.airflow is not None and stack.sandbox is not None
    api = stack.airflow.client()
    dag = "kubernaut_oom_resource_exhaustion"
    wait(lambda: api.get(f"/dags/{dag}").status_code == 200, 120, "DAGs to be parsed")
    api.patch(f"/dags/{dag}", json={"is_paused": False}).raise_for_status()
    deployment = "/apis/apps/v1/namespaces/demo/deployments/api"

    def resources() -> dict[str, Any]:
        found: dict[str, Any] = stack.sandbox.get(deployment)["spec"]["template"]["spec"]["containers"][0]
        return dict(found["resources"])

    def oom_killed_pods() -> list[str]:
        pods = stack.sandbox.get("/api/v1/namespaces/demo/pods?labelSelector=app%3Dapi")["items"]
        return [
            p["metadata"]["name"]
            for p in pods
            if any(
                (s.get("lastState") or {}).get("terminated", {}).get("reason") == "OOMKilled"
                for s in p.get("status", {}).get("containerStatuses", [])
            )
        ]

    before = resources()
    stack.sandbox.inject_fault("oom", "demo", "api")  # needs more than its limit: OOM-killed
    victim = wait(lambda: oom_killed_pods(), 60, "an OOM-killed api pod")[0]
    alert = {
        "status": "firing",
        "labels": {"alertname": "KubePodOOMKilled", "namespace": "demo", "pod": victim, "container": "api"},
        "fingerprint": "rollback-live",
    }
    body = {
        "dag_run_id": "rollback-live-1",
        "logical_date": None,
        "conf": {
            "alert": alert,
            "inject_failure": {"step": "validate-no-oom-kills"},
            "params": {"observe": "5s"},
        },
    }
    api.post(f"/dags/{dag}/dagRuns", json=body).raise_for_status()
    state = wait(
        lambda: (
            (s := api.get(f"/dags/{dag}/dagRuns/rollback-live-1").json()["state"]) in ("success", "failed")
            and s
        ),
        240,
        "the failing run",
        interval=2,
    )
    assert state == "failed"
    tis = api.get(f"/dags/{dag}/dagRuns/rollback-live-1/taskInstances").json()["task_instances"]
    states = {t["task_id"]: t["state"] for t in tis}
    assert states["raise-memory-limit"] == "success" and states["validate-no-oom-kills"] == "failed"
    assert states["rollback"] == "success" and states["finalize"] == "failed"
    assert before["limits"]["memory"] == "256Mi" and resources() == before  # the limit is restored
    with psycopg2.connect(stack.history_uri()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT r.status, j.step, j.undo_status, j.undo_attempts FROM kubernaut_runs r "
            "JOIN kubernaut_undo_journal j ON j.run_id = r.id WHERE r.dag_run_id = %s",
            ("rollback-live-1",),
        )
        assert cur.fetchall() == [("rolled_back", "raise-memory-limit", "applied", 1)]
        cur.execute(
            "SELECT s.result FROM kubernaut_runs r JOIN kubernaut_steps s ON s.run_id = r.id "
            "WHERE r.dag_run_id = %s AND s.step = 'raise-memory-limit'",
            ("rollback-live-1",),
        )
        [(raised,)] = cur.fetchall()
    assert raised["output"]["resources"]["limits"] == {"memory": "512Mi"}  # what was undone


def test_drain_waits_for_a_person_to_approve(stack: LiveStack) -> None:
    """`approval: required` on the live stack: the drain waits in the Required Actions of
    the UI until someone approves through Airflow's HITL API, then runs."""
    assert stack.airflow is not None and stack.sandbox is not None
    api = stack.airflow.client()
    dag, run_id = "kubernaut_node_not_ready", "approval-live-1"
    wait(lambda: api.get(f"/dags/{dag}").status_code == 200, 120, "DAGs to be parsed")
    api.patch(f"/dags/{dag}", json={"is_paused": False}).raise_for_status()

    def pods_on_node_1() -> list[str]:
        items = stack.sandbox.get("/api/v1/namespaces/demo/pods?fieldSelector=spec.nodeName%3Dsandbox-node-1")
        return [p["metadata"]["name"] for p in items["items"]]

    assert pods_on_node_1()
    alert = {
        "status": "firing",
        "labels": {"alertname": "KubeNodeNotReady", "node": "sandbox-node-1"},
        "fingerprint": "approval-live",
    }
    body = {"dag_run_id": run_id, "logical_date": None, "conf": {"alert": alert}}
    api.post(f"/dags/{dag}/dagRuns", json=body).raise_for_status()
    tis = f"/dags/{dag}/dagRuns/{run_id}/taskInstances"

    def state(task_id: str) -> str | None:
        found: str | None = api.get(f"{tis}/{task_id}").json().get("state")
        return found

    wait(lambda: state("approve-drain-node") == "awaiting_input", 120, "the approval request", interval=1)
    assert state("cordon-node") == "success" and state("drain-node") in (None, "none")
    node = stack.sandbox.get("/api/v1/nodes/sandbox-node-1")
    assert node["spec"]["unschedulable"] is True and pods_on_node_1()  # cordoned, not drained yet

    answer = api.patch(f"{tis}/approve-drain-node/-1/hitlDetails", json={"chosen_options": ["Approve"]})
    assert answer.status_code == 200, answer.text
    final = wait(
        lambda: (
            (s := api.get(f"/dags/{dag}/dagRuns/{run_id}").json()["state"]) in ("success", "failed") and s
        ),
        180,
        "the drain run",
        interval=2,
    )
    assert final == "success"
    assert state("drain-node") == "success" and state("rollback") == "skipped"
    wait(lambda: not pods_on_node_1(), 30, "node-1 to be empty")
