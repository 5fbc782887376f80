"""Graceful pod deletion as the real API does it: a running pod stays Terminating (deletionTimestamp,
deletionGracePeriodSeconds) until its kubelet has stopped it (preStop sleep included, bounded by
the grace period), then is deleted for good; grace 0, an unscheduled or a finished pod go at once."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubernaut.sandbox import SandboxCluster

from .conftest import ready_pods

NODE = "sandbox-node-1"


def bare_pod(
    name: str, *, node: str | None = NODE, pre_stop: int | None = None, grace: int = 30
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox"}
    if pre_stop is not None:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": pre_stop}}}
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": grace}
    if node is not None:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "demo"}, "spec": spec}


def gone_after(cluster: SandboxCluster, name: str) -> float:
    started = time.monotonic()
    cluster.wait_until(lambda: cluster.get("pods", "demo", name) is None, timeout=10)
    return time.monotonic() - started


def test_running_pod_terminates_after_its_pre_stop_sleep(
    core: client.CoreV1Api, cluster: SandboxCluster
) -> None:
    cluster.apply(bare_pod("slow", pre_stop=1))
    deleted = core.delete_namespaced_pod("slow", "demo")
    assert (
        deleted.metadata.deletion_timestamp is not None
        and deleted.metadata.deletion_grace_period_seconds == 30
    )
    terminating = cluster.get("pods", "demo", "slow")
    assert terminating is not None and terminating["metadata"]["deletionTimestamp"]
    # Still there while the preStop hook sleeps; a second delete with the same grace changes nothing.
    again = core.delete_namespaced_pod("slow", "demo")
    assert again.metadata.resource_version == deleted.metadata.resource_version
    assert 0.7 < gone_after(cluster, "slow") < 5


def test_grace_period_bounds_the_stop_and_zero_deletes_at_once(
    core: client.CoreV1Api, cluster: SandboxCluster
) -> None:
    cluster.apply(bare_pod("bounded", pre_stop=30, grace=1))
    core.delete_namespaced_pod("bounded", "demo")
    assert gone_after(cluster, "bounded") < 3  # the grace period (1 s), not the 30 s hook

    cluster.apply(bare_pod("stuck", pre_stop=30))
    core.delete_namespaced_pod("stuck", "demo")
    assert cluster.get("pods", "demo", "stuck") is not None
    core.delete_namespaced_pod("stuck", "demo", grace_period_seconds=0)  # kubectl delete --force
    assert cluster.get("pods", "demo", "stuck") is None

    unscheduled = bare_pod("pending", node=None)
    unscheduled["spec"]["nodeSelector"] = {"no-such": "node"}
    cluster.apply(unscheduled)
    core.delete_namespaced_pod("pending", "demo")  # never ran: nothing to stop
    assert cluster.get("pods", "demo", "pending") is None


def test_terminating_pods_are_replaced_and_leave_endpoints(
    core: client.CoreV1Api, apps: client.AppsV1Api, cluster: SandboxCluster
) -> None:
    pre_stop = {"preStop": {"sleep": {"seconds": 2}}}
    apps.patch_namespaced_deployment(
        "web",
        "demo",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "lifecycle": pre_stop}]}}}},
    )

    def rolled_out() -> list[dict[str, Any]]:
        pods = ready_pods(cluster, "demo", "app=web")
        done = len(pods) == 3 and all("lifecycle" in p["spec"]["containers"][0] for p in pods)
        return pods if done and len(cluster.list("pods", "demo", labels={"app": "web"})) == 3 else []

    pod = cluster.wait_until(rolled_out, timeout=30)[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    core.delete_namespaced_pod(name, "demo")

    def serving() -> list[str]:
        endpoints = cluster.get("endpoints", "demo", "web") or {}
        return [a["ip"] for s in endpoints.get("subsets", []) for a in s.get("addresses", [])]

    # The ReplicaSet does not wait for the old pod to go; Endpoints stop sending it traffic.
    cluster.wait_until(lambda: len(ready_pods(cluster, "demo", "app=web")) == 3 and ip not in serving())
    old = cluster.get("pods", "demo", name)
    assert old is not None and old["metadata"]["deletionTimestamp"]  # still stopping (preStop sleep)
    assert gone_after(cluster, name) < 5


def test_eviction_checks_preconditions_and_grace(core: client.CoreV1Api, cluster: SandboxCluster) -> None:
    cluster.apply(bare_pod("victim", pre_stop=30))
    uid = core.read_namespaced_pod("victim", "demo").metadata.uid

    def eviction(precondition_uid: str, grace: int | None = None) -> client.V1Eviction:
        return client.V1Eviction(
            metadata=client.V1ObjectMeta(name="victim", namespace="demo"),
            delete_options=client.V1DeleteOptions(
                grace_period_seconds=grace, preconditions=client.V1Preconditions(uid=precondition_uid)
            ),
        )

    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction("victim", "demo", eviction("someone-else"))
    assert err.value.status == 409 and "Precondition failed: uid" in str(err.value.body)
    core.create_namespaced_pod_eviction("victim", "demo", eviction(uid, grace=1))
    terminating = cluster.get("pods", "demo", "victim")
    assert terminating is not None and terminating["metadata"]["deletionGracePeriodSeconds"] == 1
    assert gone_after(cluster, "victim") < 3
