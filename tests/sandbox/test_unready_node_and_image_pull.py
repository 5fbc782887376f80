"""The sandbox as real Kubernetes for an unreachable node (its pods stay Terminating) and for a
rollout of an image that cannot be pulled (the image-pull fault)."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from kubernaut.sandbox import SandboxCluster
from kubernaut.simulate.engine import node_not_ready


def _pods(cluster: SandboxCluster, app: str) -> list[dict[str, Any]]:
    return list(cluster.list("pods", "demo", labels={"app": app}))


def _waiting(pod: dict[str, Any]) -> list[str]:
    return [
        ((s.get("state") or {}).get("waiting") or {}).get("reason", "")
        for s in (pod.get("status") or {}).get("containerStatuses") or []
    ]


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_)


def test_pods_on_a_not_ready_node_stay_terminating_until_it_is_back(
    cluster: SandboxCluster, core: client.CoreV1Api
) -> None:
    node = "sandbox-node-1"
    victim = next(p for p in _pods(cluster, "web") if p["spec"].get("nodeName") == node)
    name = victim["metadata"]["name"]
    node_not_ready(cluster, node)
    core.delete_namespaced_pod(name, "demo", grace_period_seconds=1)
    time.sleep(2.5)  # well past the grace period: a reachable kubelet would have finished it
    pod = cluster.get("pods", "demo", name)
    assert pod is not None and pod["metadata"].get("deletionTimestamp")
    # The node reports Ready again: its kubelet finishes the deletion.
    back = cluster.get("nodes", None, node)
    assert back is not None
    _condition(back, "Ready").update(status="True", reason="KubeletReady")
    cluster.apply(back)
    cluster.wait_until(lambda: cluster.get("pods", "demo", name) is None)


def test_image_pull_fault_rolls_out_a_revision_that_never_progresses(cluster: SandboxCluster) -> None:
    web = cluster.get("deployments", "demo", "web")
    assert web is not None
    web["spec"]["progressDeadlineSeconds"] = 1
    web["metadata"].pop("resourceVersion", None)
    cluster.apply(web)
    old = {p["metadata"]["uid"] for p in _pods(cluster, "web")}
    fault = cluster.inject_fault("image-pull", namespace="demo", deployment="web")
    assert fault["images"] == {"web": "nginx:does-not-exist"}

    def new_pods() -> list[dict[str, Any]]:
        return [p for p in _pods(cluster, "web") if p["metadata"]["uid"] not in old]

    # A new ReplicaSet (revision 2) whose pods cannot pull their image: Pending, ErrImagePull,
    # then ImagePullBackOff; the old pods keep running Ready.
    pulling = (["ErrImagePull"], ["ImagePullBackOff"])
    cluster.wait_until(lambda: len(new_pods()) == 3 and all(_waiting(p) in pulling for p in new_pods()))
    cluster.wait_until(lambda: all(_waiting(p) == ["ImagePullBackOff"] for p in new_pods()))
    failed = [e for e in cluster.list("events", "demo") if e.get("reason") == "Failed"]
    assert {e["involvedObject"]["name"] for e in failed} >= {p["metadata"]["name"] for p in new_pods()}
    assert all('Failed to pull image "nginx:does-not-exist"' in e["message"] for e in failed)
    assert all(
        p["status"]["phase"] == "Pending" and "containerID" not in p["status"]["containerStatuses"][0]
        for p in new_pods()
    )
    assert {p["metadata"]["uid"] for p in _pods(cluster, "web")} >= old
    sets = {
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs
        for rs in cluster.list("replicasets", "demo", labels={"app": "web"})
    }
    assert sorted(sets) == ["1", "2"]
    assert sets["2"]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:does-not-exist"

    # Past progressDeadlineSeconds: Progressing=False, ProgressDeadlineExceeded (still Available).
    def progressing() -> dict[str, Any]:
        dep = cluster.get("deployments", "demo", "web")
        assert dep is not None
        return _condition(dep, "Progressing")

    cluster.wait_until(lambda: progressing()["reason"] == "ProgressDeadlineExceeded", timeout=10)
    assert progressing()["status"] == "False"
    dep = cluster.get("deployments", "demo", "web")
    assert dep is not None and _condition(dep, "Available")["status"] == "True"

    # Back to the image that ran (what `kubectl rollout undo` does): the rollout completes.
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
    dep["metadata"].pop("resourceVersion", None)
    cluster.apply(dep)
    cluster.wait_until(lambda: progressing()["reason"] == "NewReplicaSetAvailable", timeout=10)
    assert progressing()["status"] == "True"
    cluster.wait_until(lambda: not any(r for p in _pods(cluster, "web") for r in _waiting(p)))
