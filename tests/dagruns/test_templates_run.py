"""Every template in templates/ runs green under dag.test() against the sandbox cluster,
with the Airflow metadata DB on the real PostgreSQL, and fixes what it is for."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
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


def oom_killed(pod: dict[str, Any]) -> bool:
    return any(
        (s.get("lastState") or {}).get("terminated", {}).get("reason") == "OOMKilled"
        for s in pod.get("status", {}).get("containerStatuses", [])
    )


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


# The pod-crash template's validation watches the pod for stable_for (30s by default).
POD_CRASH_PARAMS = {"stable_for": "2s"}


def _pod_crash_prepare(cluster: SandboxCluster) -> dict[str, Any]:
    victim = crashloop(cluster, "web")[0]["metadata"]["name"]
    # creationTimestamp has 1 s precision: a sibling created in the second the assessment looks
    # counts as a replacement too (stricter, never laxer). Real alerts come later than that.
    newest = max(p["metadata"]["creationTimestamp"] for p in pods(cluster, "web"))
    cluster.wait_until(lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) > newest)
    return {**alert("KubePodCrashLooping", pod=victim, container="web"), "params": POD_CRASH_PARAMS}


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
    settle(cluster, "api", 2)
    # The api container needs 400Mi but is limited to 256Mi: the kernel kills it again and again.
    cluster.inject_fault("oom", namespace="demo", deployment="api", memory="400Mi")
    cluster.wait_until(lambda: len(pods(cluster, "api")) == 2 and all(map(oom_killed, pods(cluster, "api"))))
    victim = pods(cluster, "api")[0]["metadata"]["name"]
    return {**alert("KubePodOOMKilled", pod=victim, container="api"), "params": {"observe": "3s"}}


def _oom_check(cluster: SandboxCluster, conf: dict[str, Any]) -> None:
    # The fault is gone: the doubled limit covers the need, no pod is OOM-killed or restarts.
    after = settle(cluster, "api", 2)
    assert not any(map(oom_killed, after)) and not any(map(crashing, after))
    assert {s["restartCount"] for p in after for s in p["status"]["containerStatuses"]} == {0}
    dep = cluster.get("deployments", "demo", "api")
    assert dep["spec"]["replicas"] == 2  # not scaled: more pods of the same size would also run out
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "50m", "memory": "512Mi"},
        "limits": {"memory": "512Mi"},
    }


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


def test_the_dag_test_scenarios_are_shipped_templates() -> None:
    # every shipped template is proven by its scenarios under tests/simulate (same step runner);
    # these run the original library through Airflow itself
    report = load_templates(REPO / "templates")
    assert not report.errors
    assert set(SCENARIOS) <= {t.name for t in report.templates}


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
    conf = {**alert("KubePodCrashLooping", pod=victim), "params": POD_CRASH_PARAMS}
    state, run_id, states = run_dag(dagbag, "kubernaut_pod_crash_recovery", conf)
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


def test_pod_crash_validation_fails_when_the_replacement_crash_loops_too(
    dagbag: Any, cluster: SandboxCluster
) -> None:
    """A bad rollout lowered web's memory limit below what it needs: its new pods are
    OOM-killed while the old ReplicaSet's pods stay Ready. Restarting the alerting pod
    brings a replacement that crash-loops the same way: the run fails; the old Ready pods
    are no replacement."""
    settle(cluster, "web", 3)
    cluster.inject_fault("oom", namespace="demo", deployment="web", memory="100Mi")
    dep = cluster.get("deployments", "demo", "web")
    dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "64Mi"
    dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = "64Mi"
    cluster.apply(dep)
    cluster.wait_until(lambda: sum(map(crashing, pods(cluster, "web"))) == 3)
    victim = next(p for p in pods(cluster, "web") if crashing(p))["metadata"]["name"]
    assert sum(map(ready, pods(cluster, "web"))) == 3  # the old ReplicaSet's pods
    conf = {
        **alert("KubePodCrashLooping", pod=victim, container="web"),
        "params": {"wait_timeout": "5s", "stable_for": "1s"},
    }
    state, _, states = run_dag(dagbag, "kubernaut_pod_crash_recovery", conf)
    assert state == "failed"
    assert states["restart-pod"] == "success" and states["validate-recovery"] == "failed", states
    assert cluster.get("pods", "demo", victim) is None
    replacements = [
        p
        for p in pods(cluster, "web")
        if p["spec"]["containers"][0]["resources"]["limits"]["memory"] == "64Mi"
    ]
    assert len(replacements) == 3 and all(map(oom_killed, replacements))


def test_oom_memory_factor_is_bounded_by_the_policy(
    dagbag: Any, cluster: SandboxCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernaut.history import History

    config = tmp_path / "kubernaut.yaml"
    config.write_text("policy: {max_resource_factor: 1.5}\n")  # the template doubles the memory
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(config))
    state, run_id, states = run_dag(dagbag, "kubernaut_oom_resource_exhaustion", _oom_prepare(cluster))
    assert state == "failed" and states["raise-memory-limit"] == "failed", states
    dep = cluster.get("deployments", "demo", "api")
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"memory": "256Mi"}
    run = History().run(run_id)
    assert run is not None
    step = {s["step"]: s for s in run["steps"]}["raise-memory-limit"]
    assert step["result"]["policy_violation"]["rule"] == "max_resource_factor"
    assert "factor 2 exceeds the limit of 1.5" in step["error"]
    assert run["undo"] == []  # refused before anything was journaled or changed
