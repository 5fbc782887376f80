"""The StatefulSet, DaemonSet, Job, CronJob and ResourceQuota templates under dag.test() against
the sandbox (the production path: operator -> step runner -> journal in PostgreSQL): each fixes
its fault, and a failure after its change rolls the cluster back exactly to before."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubernaut.history import History
from kubernaut.sandbox import SandboxCluster
from kubernaut.sandbox.batch import FAULT_ANNOTATION
from kubernaut.testing.webhook import RecordingServer, recording_server
from tests.dagruns.test_templates_run import AUTO_APPROVE, alert, crashing, ready


def _pods(cluster: SandboxCluster, app: str) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.list("pods", "demo", labels={"app": app})
        if not p["metadata"].get("deletionTimestamp")
    ]


def _settle(cluster: SandboxCluster, app: str, count: int) -> list[dict[str, Any]]:
    cluster.wait_until(
        lambda: len(_pods(cluster, app)) == count and all(map(ready, _pods(cluster, app))), timeout=20
    )
    return _pods(cluster, app)


def _set(kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": name, "image": f"{name}:1"}]},
        },
    }
    if kind == "StatefulSet":
        spec.update(replicas=2, serviceName=name)
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "demo"},
        "spec": spec,
    }


def _bad_rollout(cluster: SandboxCluster, kind: str, name: str) -> None:
    obj = copy.deepcopy(cluster.get(kind, "demo", name))
    assert obj is not None
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = f"{name}:2-broken"
    obj["spec"]["template"]["metadata"]["annotations"] = {FAULT_ANNOTATION: "crashloop"}
    cluster.apply(obj)
    cluster.wait_until(lambda: any(map(crashing, _pods(cluster, name))), timeout=20)


def _template(cluster: SandboxCluster, kind: str, name: str) -> dict[str, Any]:
    obj = cluster.get(kind, "demo", name)
    assert obj is not None
    return dict(obj["spec"]["template"])


# --- scenarios: (prepare -> alert conf, check the fault is fixed, state a rollback restores) ---


def sts_prepare(cluster: SandboxCluster) -> dict[str, Any]:
    cluster.apply(_set("StatefulSet", "db"))
    _settle(cluster, "db", 2)
    _bad_rollout(cluster, "statefulsets", "db")
    return alert("KubeStatefulSetUpdateNotRolledOut", statefulset="db")


def sts_check(cluster: SandboxCluster) -> None:
    pods = _settle(cluster, "db", 2)
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"db:1"} and not any(map(crashing, pods))
    status = (cluster.get("statefulsets", "demo", "db") or {})["status"]
    assert status["currentRevision"] == status["updateRevision"]


def ds_prepare(cluster: SandboxCluster) -> dict[str, Any]:
    cluster.apply(_set("DaemonSet", "agent"))
    _settle(cluster, "agent", 2)
    _bad_rollout(cluster, "daemonsets", "agent")
    return alert("KubeDaemonSetRolloutStuck", daemonset="agent")


def ds_check(cluster: SandboxCluster) -> None:
    pods = _settle(cluster, "agent", 2)
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"agent:1"}


def _job(name: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "demo", **meta},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "etl:1"}]}},
        },
    }


def _failed(cluster: SandboxCluster, name: str) -> bool:
    job = cluster.get("jobs", "demo", name) or {}
    return any(c["type"] == "Failed" for c in (job.get("status") or {}).get("conditions") or [])


def job_prepare(cluster: SandboxCluster) -> dict[str, Any]:
    # This run failed (a dependency was down: the sandbox's fault marker on the Job); a rerun works.
    cluster.apply(_job("etl", annotations={FAULT_ANNOTATION: "crashloop"}))
    cluster.wait_until(lambda: _failed(cluster, "etl"), timeout=20)
    return alert("KubeJobFailed", job_name="etl", condition="true")


def job_check(cluster: SandboxCluster) -> None:
    assert cluster.get("jobs", "demo", "etl") is None  # the failed Job is gone: the alert clears
    [rerun] = cluster.list("jobs", "demo")
    assert rerun["metadata"]["annotations"]["kubernaut.io/rerun-of"] == "job/etl"
    assert any(c["type"] == "Complete" for c in rerun["status"]["conditions"])


CRON_JOB = "backup-29500000"


def cron_prepare(cluster: SandboxCluster) -> dict[str, Any]:
    cluster.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "backup", "namespace": "demo"},
            "spec": {"schedule": "0 0 1 1 *", "jobTemplate": {"spec": _job("x")["spec"]}},
        }
    )
    cron = cluster.get("cronjobs", "demo", "backup")
    assert cron is not None
    owner = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "name": "backup",
        "uid": cron["metadata"]["uid"],
        "controller": True,
    }
    cluster.apply(_job(CRON_JOB, ownerReferences=[owner], annotations={FAULT_ANNOTATION: "crashloop"}))
    cluster.wait_until(lambda: _failed(cluster, CRON_JOB), timeout=20)
    return alert("KubeJobFailed", job_name=CRON_JOB, condition="true")


def cron_check(cluster: SandboxCluster) -> None:
    assert (cluster.get("cronjobs", "demo", "backup") or {})["spec"]["suspend"] is True
    assert cluster.get("jobs", "demo", CRON_JOB) is not None  # left for a person to look at


def quota_prepare(cluster: SandboxCluster) -> dict[str, Any]:
    _settle(cluster, "api", 2)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "compute", "namespace": "demo"},
            "spec": {"hard": {"pods": "6"}},
        }
    )
    web = cluster.get("deployments", "demo", "web")
    assert web is not None
    web["spec"]["replicas"] = 5
    cluster.apply(web)
    cluster.wait_until(
        lambda: any(e["reason"] == "FailedCreate" for e in cluster.list("events", "demo")), timeout=20
    )
    return alert("KubeQuotaFullyUsed", resourcequota="compute", resource="pods")


def quota_check(cluster: SandboxCluster) -> None:
    assert (cluster.get("resourcequotas", "demo", "compute") or {})["spec"]["hard"] == {"pods": "9"}
    _settle(cluster, "web", 5)


Prepare = Callable[[SandboxCluster], dict[str, Any]]
SCENARIOS: dict[str, tuple[Prepare, Callable[[SandboxCluster], None]]] = {
    "statefulset-rollout-stuck": (sts_prepare, sts_check),
    "daemonset-rollout-stuck": (ds_prepare, ds_check),
    "job-failed": (job_prepare, job_check),
    "cronjob-failing": (cron_prepare, cron_check),
    "quota-almost-full": (quota_prepare, quota_check),
}


def state(cluster: SandboxCluster) -> dict[str, Any]:
    """What these templates change: set templates, Jobs, CronJob suspension, quota limits."""
    found: dict[str, Any] = {}
    for kind in ("statefulsets", "daemonsets"):
        for obj in cluster.list(kind, "demo"):
            found[f"{kind}/{obj['metadata']['name']}"] = obj["spec"]["template"]
    for obj in cluster.list("jobs", "demo"):
        found[f"jobs/{obj['metadata']['name']}"] = obj["metadata"]["uid"]
    for obj in cluster.list("cronjobs", "demo"):
        found[f"cronjobs/{obj['metadata']['name']}"] = obj["spec"]["suspend"]
    for obj in cluster.list("resourcequotas", "demo"):
        found[f"resourcequotas/{obj['metadata']['name']}"] = obj["spec"]["hard"]
    return found


@pytest.fixture
def webhook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingServer]:
    with recording_server() as server:
        config = tmp_path / "kubernaut.yaml"
        config.write_text("notify_conn_id: ops_webhook\n")
        monkeypatch.setenv("KUBERNAUT_CONFIG", str(config))
        monkeypatch.setenv("AIRFLOW_CONN_OPS_WEBHOOK", json.dumps({"conn_type": "http", "host": server.url}))
        yield server


def _run(dagbag: Any, name: str, conf: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    dr = dagbag.dags["kubernaut_" + name.replace("-", "_")].test(
        run_conf=conf, mark_success_pattern=AUTO_APPROVE
    )
    return dr, {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_template_fixes_its_fault(
    name: str, dagbag: Any, cluster: SandboxCluster, webhook: RecordingServer
) -> None:
    prepare, check = SCENARIOS[name]
    dr, states = _run(dagbag, name, prepare(cluster))
    assert str(dr.state) == "success", states
    check(cluster)
    if name == "cronjob-failing":
        [sent] = webhook.requests
        assert sent.json()["title"] == "CronJob demo/backup suspended"


# (template, the step to fail at: after the template's changes)
FAIL_AT = [
    ("statefulset-rollout-stuck", "rollback-statefulset"),
    ("job-failed", "delete-failed-job"),
    ("cronjob-failing", "notify"),
]


@pytest.mark.parametrize(("name", "step"), FAIL_AT, ids=[f"{n}:{s}" for n, s in FAIL_AT])
def test_failure_after_the_change_restores_the_cluster(
    name: str, step: str, dagbag: Any, cluster: SandboxCluster, webhook: RecordingServer
) -> None:
    conf = SCENARIOS[name][0](cluster)
    before = state(cluster)
    dr, states = _run(dagbag, name, {**conf, "inject_failure": {"step": step}})
    assert str(dr.state) == "failed" and states["rollback"] == "success", states
    after = state(cluster)
    run = History().run(dr.run_id)
    assert run is not None
    entries = {e["step"]: e for e in run["undo"]}
    assert all(e["undo_attempts"] == 1 for e in entries.values()), entries
    if name == "job-failed":
        # The failed Job was deleted and created again (suspended, a new uid); the rerun deleted.
        assert set(after) == set(before)
        job = cluster.get("jobs", "demo", "etl")
        assert job is not None and job["spec"]["suspend"] is True
        assert entries["delete-failed-job"]["undo_status"] == "applied"
        assert entries["rerun-job"]["undo_status"] == "applied"
        assert run["status"] == "rolled_back"
    else:
        assert after == before
        assert run["status"] == "rolled_back"


# The same scenarios in test_templates_run's shape (check takes the conf too), for its SCENARIOS.
TEMPLATE_SCENARIOS: dict[str, tuple[Prepare, Callable[[SandboxCluster, dict[str, Any]], None]]] = {
    name: (prepare, lambda cluster, conf, check=check: check(cluster))
    for name, (prepare, check) in SCENARIOS.items()
}
