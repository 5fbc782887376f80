"""Every template in templates/ runs green under dag.test() against the sandbox cluster,
with the Airflow metadata DB on the real PostgreSQL, and fixes what it is for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kubernaut.sandbox import SandboxCluster
from kubernaut.templates.loader import load_templates
from tests.conftest import REPO


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", [])
    )


def crashing(pod: dict[str, Any]) -> bool:
    return any(
        (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
        for s in pod.get("status", {}).get("containerStatuses", [])
    )


def pods(cluster: SandboxCluster, app: str) -> list[dict[str, Any]]:
    return cluster.list("pods", "demo", labels={"app": app})


def settle(cluster: SandboxCluster, app: str, count: int) -> list[dict[str, Any]]:
    cluster.wait_until(lambda: len(pods(cluster, app)) == count and all(map(ready, pods(cluster, app))))
    return pods(cluster, app)


def crashloop(cluster: SandboxCluster, app: str) -> list[dict[str, Any]]:
    settle(cluster, app, cluster.get("deployments", "demo", app)["spec"]["replicas"])
    cluster.inject_fault("crashloop", namespace="demo", deployment=app)
    cluster.wait_until(lambda: all(map(crashing, pods(cluster, app))))
    return pods(cluster, app)


def alert(name: str, **labels: str) -> dict[str, Any]:
    return {
        "alert": {
            "status": "firing",
            "labels": {"alertname": name, "namespace": "demo", **labels},
            "annotations": {"summary": "{{ 7*7 }} stays text"},
            "fingerprint": f"fp-{name}",
        }
    }


def xcom(dag_id: str, run_id: str, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        ).one()
        return XComModel.deserialize_value(row)


# dag.test cannot answer a human-in-the-loop request: approval gates are marked approved here
# (tests/intake/test_live_alertmanager.py approves one through the REST API on the live stack).
AUTO_APPROVE = r"approve-.*"  # dag.test matches the whole task id


def run_dag(dagbag: Any, dag_id: str, conf: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    dr = dagbag.dags[dag_id].test(run_conf=conf, mark_success_pattern=AUTO_APPROVE)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    return str(dr.state), dr.run_id, states


# template name -> (prepare cluster and return the alert conf, check the cluster afterwards)
Scenario = tuple[Callable[[SandboxCluster], dict[str, Any]], Callable[[SandboxCluster, dict[str, Any]], None]]


def _pod_crash_prepare(cluster: SandboxCluster) -> dict[str, Any]:
    victim = crashloop(cluster, "web")[0]["metadata"]["name"]
    return alert("KubePodCrashLooping", pod=victim, container="web")


def _pod_crash_check(cluster: SandboxCluster, conf: dict[str, Any]) -> None:
    victim = conf["alert"]["labels"]["pod"]
    assert cluster.get("pods", "demo", victim) is None  # restarted
    assert sum(ready(p) for p in pods(cluster, "web")) >= 1


def _mismatch_prepare(cluster: SandboxCluster) -> dict[str, Any]:
    crashloop(cluster, "web")
    return alert("KubeDeploymentReplicasMismatch", deployment="web")


def _mismatch_check(cluster: SandboxCluster, conf: dict[str, Any]) -> None:
    after = settle(cluster, "web", 3)
    assert not any(map(crashing, after))
    dep = cluster.get("deployments", "demo", "web")
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"


def _oom_prepare(cluster: SandboxCluster) -> dict[str, Any]:
    victim = settle(cluster, "api", 2)[0]["metadata"]["name"]
    return alert("KubePodOOMKilled", pod=victim)


def _oom_check(cluster: SandboxCluster, conf: dict[str, Any]) -> None:
    assert cluster.get("deployments", "demo", "api")["spec"]["replicas"] == 3
    settle(cluster, "api", 3)


def _restart_prepare(cluster: SandboxCluster) -> dict[str, Any]:
    settle(cluster, "api", 2)
    return alert("KubernautRolloutRestart", deployment="api")


def _restart_check(cluster: SandboxCluster, conf: dict[str, Any]) -> None:
    dep = cluster.get("deployments", "demo", "api")
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]
    settle(cluster, "api", 2)


def _diagnostics_prepare(cluster: SandboxCluster) -> dict[str, Any]:
    victim = crashloop(cluster, "web")[0]["metadata"]["name"]
    return alert("KubePodNotReady", pod=victim)


def _diagnostics_check(cluster: SandboxCluster, conf: dict[str, Any]) -> None:
    assert cluster.get("pods", "demo", conf["alert"]["labels"]["pod"]) is not None  # read-only
    assert all(map(crashing, pods(cluster, "web")))


def _node_prepare(cluster: SandboxCluster) -> dict[str, Any]:
    settle(cluster, "web", 3)
    on_node = [p for p in cluster.list("pods", "demo") if p["spec"].get("nodeName") == "sandbox-node-1"]
    assert on_node, "the sandbox schedules demo pods on both nodes"
    return {
        "alert": {
            "status": "firing",
            "labels": {"alertname": "KubeNodeNotReady", "node": "sandbox-node-1"},
            "fingerprint": "fp-node",
        }
    }


def _node_check(cluster: SandboxCluster, conf: dict[str, Any]) -> None:
    node = cluster.get("nodes", None, "sandbox-node-1")
    assert node is not None and node["spec"].get("unschedulable") is True
    cluster.wait_until(
        lambda: not [p for p in cluster.list("pods", "demo") if p["spec"].get("nodeName") == "sandbox-node-1"]
    )
    settle(cluster, "web", 3)
    assert all(p["spec"]["nodeName"] == "sandbox-node-2" for p in pods(cluster, "web"))


SCENARIOS: dict[str, Scenario] = {
    "pod-crash-recovery": (_pod_crash_prepare, _pod_crash_check),
    "deployment-replica-mismatch": (_mismatch_prepare, _mismatch_check),
    "oom-resource-exhaustion": (_oom_prepare, _oom_check),
    "rollout-restart": (_restart_prepare, _restart_check),
    "pod-diagnostics": (_diagnostics_prepare, _diagnostics_check),
    "node-not-ready": (_node_prepare, _node_check),
}


def test_every_template_has_a_scenario() -> None:
    report = load_templates(REPO / "templates")
    assert not report.errors
    assert {t.name for t in report.templates} == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_template_remediates_under_dag_test(name: str, dagbag: Any, cluster: SandboxCluster) -> None:
    prepare, check = SCENARIOS[name]
    conf = prepare(cluster)
    dag_id = "kubernaut_" + name.replace("-", "_")
    state, _, states = run_dag(dagbag, dag_id, conf)
    assert state == "success", states
    assert all(s in ("success", "skipped") for s in states.values()), states
    check(cluster, conf)


def test_condition_skips_restart_of_a_healthy_pod(dagbag: Any, cluster: SandboxCluster) -> None:
    victim = settle(cluster, "web", 3)[0]["metadata"]["name"]
    state, run_id, states = run_dag(
        dagbag, "kubernaut_pod_crash_recovery", alert("KubePodCrashLooping", pod=victim)
    )
    assert state == "success"
    assert states == {
        "assess-pod-state": "success",
        "restart-pod": "skipped",
        "validate-recovery": "success",
        "rollback": "skipped",
        "finalize": "success",
    }
    assert cluster.get("pods", "demo", victim) is not None
    record = xcom("kubernaut_pod_crash_recovery", run_id, "assess-pod-state")
    assert record["output"]["ready"] is True and record["parameters"] == {"namespace": "demo", "pod": victim}


def test_injected_alert_label_fails_the_step_without_touching_the_cluster(
    dagbag: Any, cluster: SandboxCluster
) -> None:
    before = {p["metadata"]["name"] for p in settle(cluster, "web", 3)}
    state, _, states = run_dag(
        dagbag, "kubernaut_pod_crash_recovery", alert("KubePodCrashLooping", pod="{{ 7*7 }}")
    )
    assert state == "failed"
    assert states["assess-pod-state"] == "failed" and states["restart-pod"] == "upstream_failed"
    assert states["rollback"] == "success" and states["finalize"] == "failed"
    assert {p["metadata"]["name"] for p in pods(cluster, "web")} == before


def test_dry_run_changes_nothing(dagbag: Any, cluster: SandboxCluster) -> None:
    settle(cluster, "api", 2)
    conf = {**alert("KubernautRolloutRestart", deployment="api"), "dry_run": True}
    state, run_id, _ = run_dag(dagbag, "kubernaut_rollout_restart", conf)
    assert state == "success"
    record = xcom("kubernaut_rollout_restart", run_id, "rollout-restart")
    assert record["dry_run"] is True and record["changed"] is False
    annotations = (
        cluster.get("deployments", "demo", "api")["spec"]["template"]["metadata"].get("annotations") or {}
    )
    assert "kubectl.kubernetes.io/restartedAt" not in annotations
