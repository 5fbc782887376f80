"""StatefulSet and DaemonSet controllers: ControllerRevisions as the real controllers keep
them (name, labels, data, revision numbers, reuse on rollback, history limit), rolling updates
(partition, OnDelete, a DaemonSet's maxUnavailable) and status revisions."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client

from kubernaut.sandbox import SandboxCluster
from kubernaut.sandbox.disruption import is_pod_ready


def sts(name: str = "db", replicas: int = 2, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "pg:16"}]},
            },
            **spec,
        },
    }


def pods(cluster: SandboxCluster, app: str) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.list("pods", "demo", labels={"app": app})
        if not p["metadata"].get("deletionTimestamp")
    ]


def revisions(cluster: SandboxCluster, app: str) -> list[dict[str, Any]]:
    return sorted(
        cluster.list("controllerrevisions", "demo", labels={"app": app}), key=lambda r: r["revision"]
    )


def set_image(cluster: SandboxCluster, kind: str, name: str, image: str) -> None:
    obj = cluster.get(kind, "demo", name)
    assert obj is not None
    obj = copy.deepcopy(obj)
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = image
    cluster.apply(obj)


def settled(cluster: SandboxCluster, name: str, count: int, image: str) -> bool:
    found = pods(cluster, name)
    return len(found) == count and all(
        is_pod_ready(p) and p["spec"]["containers"][0]["image"] == image for p in found
    )


def test_statefulset_revisions_and_rollback(cluster: SandboxCluster, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_stateful_set("demo", sts(revisionHistoryLimit=1))
    cluster.wait_until(lambda: settled(cluster, "db", 2, "pg:16"))
    [first] = revisions(cluster, "db")
    owner = cluster.get("statefulsets", "demo", "db")
    assert owner is not None
    assert first["metadata"]["name"].startswith("db-") and first["revision"] == 1
    assert first["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
    hash_ = first["metadata"]["labels"]["controller-revision-hash"]
    assert first["metadata"]["name"] == f"db-{hash_}" and first["metadata"]["labels"]["app"] == "db"
    assert first["data"] == {"spec": {"template": {**owner["spec"]["template"], "$patch": "replace"}}}
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in pods(cluster, "db")} == {
        first["metadata"]["name"]
    }
    assert (
        owner["status"]["currentRevision"] == owner["status"]["updateRevision"] == first["metadata"]["name"]
    )

    set_image(cluster, "statefulsets", "db", "pg:17")
    cluster.wait_until(lambda: settled(cluster, "db", 2, "pg:17"))
    second = revisions(cluster, "db")[-1]
    assert [r["revision"] for r in revisions(cluster, "db")] == [1, 2]
    status = cluster.wait_until(
        lambda: (
            (s := (cluster.get("statefulsets", "demo", "db") or {}).get("status"))
            and s["currentRevision"] == second["metadata"]["name"]
            and s
        )
    )
    assert status["updateRevision"] == second["metadata"]["name"] and status["updatedReplicas"] == 2

    # Back to the first template: its revision is reused with the next number.
    set_image(cluster, "statefulsets", "db", "pg:16")
    cluster.wait_until(lambda: settled(cluster, "db", 2, "pg:16"))
    assert {r["metadata"]["name"]: r["revision"] for r in revisions(cluster, "db")} == {
        first["metadata"]["name"]: 3,
        second["metadata"]["name"]: 2,
    }
    # A third template: with revisionHistoryLimit 1 the oldest unused revision goes.
    set_image(cluster, "statefulsets", "db", "pg:18")
    cluster.wait_until(lambda: settled(cluster, "db", 2, "pg:18"))
    cluster.wait_until(lambda: len(revisions(cluster, "db")) == 2)
    assert [r["revision"] for r in revisions(cluster, "db")] == [3, 4]


def test_statefulset_partition_and_on_delete(cluster: SandboxCluster, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_stateful_set(
        "demo", sts(replicas=3, updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    )
    cluster.wait_until(lambda: settled(cluster, "db", 3, "pg:16"))
    set_image(cluster, "statefulsets", "db", "pg:17")
    cluster.wait_until(
        lambda: (p := cluster.get("pods", "demo", "db-2")) and p["spec"]["containers"][0]["image"] == "pg:17"
    )
    cluster.wait_until(lambda: all(map(is_pod_ready, pods(cluster, "db"))) and len(pods(cluster, "db")) == 3)
    images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in pods(cluster, "db")}
    assert images == {"db-0": "pg:16", "db-1": "pg:16", "db-2": "pg:17"}  # below the partition: kept
    status = (cluster.get("statefulsets", "demo", "db") or {})["status"]
    assert status["currentRevision"] != status["updateRevision"] and status["updatedReplicas"] == 1

    apps.create_namespaced_stateful_set("demo", sts("cache", 1, updateStrategy={"type": "OnDelete"}))
    cluster.wait_until(lambda: settled(cluster, "cache", 1, "pg:16"))
    set_image(cluster, "statefulsets", "cache", "pg:17")
    cluster.wait_until(lambda: len(revisions(cluster, "cache")) == 2)
    assert pods(cluster, "cache")[0]["spec"]["containers"][0]["image"] == "pg:16"  # OnDelete: not replaced
    cluster.delete("pods", "demo", "cache-0")
    cluster.wait_until(lambda: settled(cluster, "cache", 1, "pg:17"))


def test_daemonset_revisions_and_rolling_update(cluster: SandboxCluster, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_daemon_set(
        "demo",
        {
            "metadata": {"name": "agent"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "agent", "image": "agent:1"}]},
                },
            },
        },
    )
    cluster.wait_until(lambda: settled(cluster, "agent", 2, "agent:1"))
    [first] = revisions(cluster, "agent")
    hash_ = first["metadata"]["labels"]["controller-revision-hash"]
    assert first["metadata"]["name"] == f"agent-{hash_}" and first["revision"] == 1
    # DaemonSet pods carry the bare hash (StatefulSet pods the revision's name).
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in pods(cluster, "agent")} == {hash_}

    set_image(cluster, "daemonsets", "agent", "agent:2")
    seen_unavailable = 0

    def rolled() -> bool:
        nonlocal seen_unavailable
        found = pods(cluster, "agent")
        seen_unavailable = max(seen_unavailable, 2 - sum(map(is_pod_ready, found)))
        return settled(cluster, "agent", 2, "agent:2")

    cluster.wait_until(rolled, interval=0.01)
    assert seen_unavailable <= 1  # maxUnavailable 1: one node at a time
    assert [r["revision"] for r in revisions(cluster, "agent")] == [1, 2]
    status = cluster.wait_until(
        lambda: (
            (s := (cluster.get("daemonsets", "demo", "agent") or {}).get("status"))
            and s.get("updatedNumberScheduled") == s.get("numberReady") == 2
            and s
        )
    )
    assert status["desiredNumberScheduled"] == status["currentNumberScheduled"] == 2
