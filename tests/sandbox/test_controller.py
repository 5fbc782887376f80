"""Controller behaviour: replacement, scaling, rollouts/rollbacks, cordons, statefulsets, daemonsets."""

from __future__ import annotations

import datetime

from kubernetes import client

from kubernaut.sandbox import SandboxCluster

from .conftest import deployment_ready, ready_pods

REVISION = "deployment.kubernetes.io/revision"


def _replicasets(apps: client.AppsV1Api, app: str) -> dict[str, client.V1ReplicaSet]:
    return {
        rs.metadata.name: rs
        for rs in apps.list_namespaced_replica_set("demo", label_selector=f"app={app}").items
    }


def _restart(apps: client.AppsV1Api, name: str) -> None:
    stamp = datetime.datetime.now(tz=datetime.UTC).isoformat()
    apps.patch_namespaced_deployment(
        name,
        "demo",
        {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}},
    )


def test_deployment_owns_replicaset_owns_pods(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    deployment = apps.read_namespaced_deployment("web", "demo")
    (rs,) = _replicasets(apps, "web").values()
    assert rs.metadata.owner_references[0].uid == deployment.metadata.uid
    assert rs.metadata.owner_references[0].controller is True
    assert rs.metadata.annotations[REVISION] == deployment.metadata.annotations[REVISION] == "1"
    pod_hash = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{pod_hash}"
    pods = core.list_namespaced_pod("demo", label_selector=f"pod-template-hash={pod_hash}").items
    assert len(pods) == 3 and all(p.metadata.name.startswith(f"{rs.metadata.name}-") for p in pods)
    assert all(p.metadata.owner_references[0].uid == rs.metadata.uid for p in pods)
    status = deployment.status
    assert (status.replicas, status.ready_replicas, status.available_replicas, status.updated_replicas) == (
        3,
        3,
        3,
        3,
    )
    assert {c.type: c.status for c in status.conditions} == {"Available": "True", "Progressing": "True"}


def test_pods_start_pending_then_ready(cluster: SandboxCluster, core: client.CoreV1Api) -> None:
    pod = core.create_namespaced_pod(
        "demo", {"metadata": {"name": "solo"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    )
    assert pod.status.phase == "Pending"
    cluster.wait_until(lambda: core.read_namespaced_pod("solo", "demo").status.phase == "Running")
    ready = core.read_namespaced_pod("solo", "demo").status
    assert {c.type: c.status for c in ready.conditions}["Ready"] == "True"
    assert ready.container_statuses[0].state.running is not None


def test_deleted_pod_is_replaced(cluster: SandboxCluster, core: client.CoreV1Api) -> None:
    victim = ready_pods(cluster, "demo", "app=web")[0]["metadata"]["name"]
    core.delete_namespaced_pod(victim, "demo")
    cluster.wait_until(lambda: len(ready_pods(cluster, "demo", "app=web")) == 3)
    assert victim not in {p["metadata"]["name"] for p in cluster.list("pods", "demo", labels="app=web")}


def test_scaling_changes_pod_count(cluster: SandboxCluster, apps: client.AppsV1Api) -> None:
    apps.patch_namespaced_deployment("web", "demo", {"spec": {"replicas": 5}})
    cluster.wait_until(lambda: len(ready_pods(cluster, "demo", "app=web")) == 5)
    apps.patch_namespaced_deployment("web", "demo", {"spec": {"replicas": 2}})
    cluster.wait_until(lambda: len(cluster.list("pods", "demo", labels="app=web")) == 2)
    cluster.wait_until(lambda: deployment_ready(cluster, "demo", "web"))


def test_rollout_restart_then_rollback(cluster: SandboxCluster, apps: client.AppsV1Api) -> None:
    (first,) = _replicasets(apps, "web")
    _restart(apps, "web")
    cluster.wait_until(lambda: deployment_ready(cluster, "demo", "web"))
    replicasets = _replicasets(apps, "web")
    (second,) = set(replicasets) - {first}
    assert replicasets[second].metadata.annotations[REVISION] == "2"
    assert apps.read_namespaced_deployment("web", "demo").metadata.annotations[REVISION] == "2"
    cluster.wait_until(lambda: _replicasets(apps, "web")[first].spec.replicas == 0)
    assert all(p["metadata"]["name"].startswith(second) for p in ready_pods(cluster, "demo", "app=web"))

    # Rollback (like `kubectl rollout undo`): the old template again reuses the old ReplicaSet.
    old_template = replicasets[first].spec.template
    old_template.metadata.labels.pop("pod-template-hash")
    apps.patch_namespaced_deployment(
        "web",
        "demo",
        [
            {
                "op": "replace",
                "path": "/spec/template",
                "value": apps.api_client.sanitize_for_serialization(old_template),
            }
        ],
    )
    cluster.wait_until(lambda: deployment_ready(cluster, "demo", "web"))
    replicasets = _replicasets(apps, "web")
    assert set(replicasets) == {first, second}
    assert replicasets[first].metadata.annotations[REVISION] == "3"
    assert replicasets[first].spec.replicas == 3 and replicasets[second].spec.replicas == 0


def test_cordoned_node_gets_no_new_pods(cluster: SandboxCluster, core: client.CoreV1Api) -> None:
    core.patch_node("sandbox-node-1", {"spec": {"unschedulable": True}})
    for pod in cluster.list("pods", "demo", labels="app=web"):
        core.delete_namespaced_pod(pod["metadata"]["name"], "demo")
    cluster.wait_until(lambda: len(ready_pods(cluster, "demo", "app=web")) == 3)
    assert {p["spec"]["nodeName"] for p in ready_pods(cluster, "demo", "app=web")} == {"sandbox-node-2"}


def test_statefulset_and_daemonset(cluster: SandboxCluster, apps: client.AppsV1Api) -> None:
    template = {
        "metadata": {"labels": {"app": "db"}},
        "spec": {"containers": [{"name": "db", "image": "pg:16"}]},
    }
    apps.create_namespaced_stateful_set(
        "demo",
        {
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 2,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": template,
            },
        },
    )
    ds_template = {
        "metadata": {"labels": {"app": "agent"}},
        "spec": {"containers": [{"name": "agent", "image": "agent:1"}]},
    }
    apps.create_namespaced_daemon_set(
        "demo",
        {
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": ds_template},
        },
    )
    cluster.wait_until(
        lambda: (
            (
                apps.read_namespaced_stateful_set("db", "demo").status
                or client.V1StatefulSetStatus(replicas=0)
            ).ready_replicas
            == 2
        )
    )
    assert sorted(p["metadata"]["name"] for p in cluster.list("pods", "demo", labels="app=db")) == [
        "db-0",
        "db-1",
    ]
    apps.patch_namespaced_stateful_set_scale("db", "demo", {"spec": {"replicas": 3}})
    cluster.wait_until(lambda: len(ready_pods(cluster, "demo", "app=db")) == 3)
    cluster.wait_until(
        lambda: getattr(apps.read_namespaced_daemon_set("agent", "demo").status, "number_ready", 0) == 2
    )
    assert {p["spec"]["nodeName"] for p in cluster.list("pods", "demo", labels="app=agent")} == {
        "sandbox-node-1",
        "sandbox-node-2",
    }


def test_deleting_deployment_collects_its_pods(cluster: SandboxCluster, apps: client.AppsV1Api) -> None:
    apps.delete_namespaced_deployment("api", "demo")
    cluster.wait_until(lambda: not cluster.list("pods", "demo", labels="app=api"))
    assert not cluster.list("replicasets", "demo", labels="app=api")
