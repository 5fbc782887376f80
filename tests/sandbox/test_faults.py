"""Fault injection and its remediation."""

from __future__ import annotations

import datetime
import json
import time
import urllib.error
import urllib.request
from typing import Any

from kubernetes import client

from kubernaut.sandbox import SandboxCluster

from .conftest import deployment_ready, ready_pods


def _crashing(cluster: SandboxCluster, selector: str) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.list("pods", "demo", labels=selector)
        if any(
            (s.get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
            for s in p.get("status", {}).get("containerStatuses", [])
        )
    ]


def test_crashloop_then_fixed_by_delete(cluster: SandboxCluster, core: client.CoreV1Api) -> None:
    cluster.inject_fault("crashloop", namespace="demo", deployment="web")
    cluster.wait_until(lambda: len(_crashing(cluster, "app=web")) == 3)
    name = _crashing(cluster, "app=web")[0]["metadata"]["name"]
    cluster.wait_until(
        lambda: core.read_namespaced_pod(name, "demo").status.container_statuses[0].restart_count >= 2
    )
    pod = core.read_namespaced_pod(name, "demo")
    assert pod.status.container_statuses[0].ready is False
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"
    assert "panic" in core.read_namespaced_pod_log(name, "demo", _preload_content=False).data.decode()
    assert (
        "panic"
        in core.read_namespaced_pod_log(name, "demo", previous=True, _preload_content=False).data.decode()
    )
    assert (
        not client.AppsV1Api(core.api_client).read_namespaced_deployment("web", "demo").status.ready_replicas
    )
    core.delete_namespaced_pod(name, "demo")
    cluster.wait_until(lambda: len(ready_pods(cluster, "demo", "app=web")) == 1)
    assert len(_crashing(cluster, "app=web")) == 2


def test_crashloop_fixed_by_rollout_restart(cluster: SandboxCluster, apps: client.AppsV1Api) -> None:
    cluster.inject_fault("crashloop", namespace="demo", deployment="web")
    cluster.wait_until(lambda: len(_crashing(cluster, "app=web")) == 3)
    stamp = datetime.datetime.now(tz=datetime.UTC).isoformat()
    apps.patch_namespaced_deployment(
        "web",
        "demo",
        {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}},
    )
    cluster.wait_until(lambda: deployment_ready(cluster, "demo", "web") and not _crashing(cluster, "app=web"))
    assert len(ready_pods(cluster, "demo", "app=web")) == 3


def test_oom_fixed_only_by_raising_the_limit(
    cluster: SandboxCluster, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    cluster.inject_fault("oom", namespace="demo", deployment="api")
    cluster.wait_until(lambda: len(_crashing(cluster, "app=api")) == 2)
    pod = _crashing(cluster, "app=api")[0]
    assert pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"] == "OOMKilled"
    core.delete_namespaced_pod(pod["metadata"]["name"], "demo")  # a plain restart does not help
    cluster.wait_until(
        lambda: (
            len(_crashing(cluster, "app=api")) == 2
            and pod["metadata"]["name"] not in {p["metadata"]["name"] for p in _crashing(cluster, "app=api")}
        )
    )
    apps.patch_namespaced_deployment(
        "api",
        "demo",
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "api", "resources": {"limits": {"memory": "512Mi"}}}]}
                }
            }
        },
    )
    cluster.wait_until(lambda: deployment_ready(cluster, "demo", "api") and not _crashing(cluster, "app=api"))


def test_unready_fault_and_http_control_endpoint(cluster: SandboxCluster) -> None:
    request = urllib.request.Request(
        cluster.url + "/sandbox/faults",
        method="POST",
        data=json.dumps({"type": "unready", "namespace": "demo", "deployment": "api"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
    with urllib.request.urlopen(cluster.url + "/sandbox/faults", timeout=5) as response:
        faults = json.loads(response.read())["faults"]
    assert [(f["type"], f["deployment"]) for f in faults] == [("unready", "api")]
    cluster.wait_until(lambda: not ready_pods(cluster, "demo", "app=api"))
    assert all(p["status"]["phase"] == "Running" for p in cluster.list("pods", "demo", labels="app=api"))


def _set_api_memory_limit(apps: client.AppsV1Api, memory: str) -> None:
    path = "/spec/template/spec/containers/0/resources"
    patch = [
        {"op": "replace", "path": f"{path}/limits/memory", "value": memory},
        {"op": "replace", "path": f"{path}/requests/memory", "value": memory},
    ]
    apps.patch_namespaced_deployment("api", "demo", patch, _content_type="application/json-patch+json")


def _oom_killed(pod: dict[str, Any]) -> bool:
    return any(
        (s.get("lastState") or {}).get("terminated", {}).get("reason") == "OOMKilled"
        for s in pod.get("status", {}).get("containerStatuses", [])
    )


def test_oom_fault_kills_containers_whose_limit_is_below_the_need(
    cluster: SandboxCluster, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    fault = cluster.inject_fault("oom", namespace="demo", deployment="api", memory="400Mi")
    assert fault["memory"] == "400Mi" and fault["needs"] == {"api": str(400 * 2**20)}
    cluster.wait_until(lambda: len(_crashing(cluster, "app=api")) == 2)
    name = _crashing(cluster, "app=api")[0]["metadata"]["name"]
    cluster.wait_until(
        lambda: core.read_namespaced_pod(name, "demo").status.container_statuses[0].restart_count >= 2
    )
    status = core.read_namespaced_pod(name, "demo").status.container_statuses[0]
    assert (
        status.last_state.terminated.reason == "OOMKilled" and status.last_state.terminated.exit_code == 137
    )
    assert status.state.waiting.reason == "CrashLoopBackOff" and status.ready is False
    log = core.read_namespaced_pod_log(name, "demo", previous=True, _preload_content=False).data.decode()
    assert "out of memory" in log

    _set_api_memory_limit(apps, "384Mi")  # more than before, still below the need

    def new_pods_oom_killed() -> bool:
        new = [
            p
            for p in cluster.list("pods", "demo", labels="app=api")
            if p["spec"]["containers"][0]["resources"]["limits"]["memory"] == "384Mi"
        ]
        return len(new) == 2 and all(map(_oom_killed, new))

    cluster.wait_until(new_pods_oom_killed)
    assert not deployment_ready(cluster, "demo", "api")  # the rollout is stuck on crashing pods

    _set_api_memory_limit(apps, "400Mi")  # exactly the need is enough
    cluster.wait_until(lambda: deployment_ready(cluster, "demo", "api") and not _crashing(cluster, "app=api"))
    pods = cluster.list("pods", "demo", labels="app=api")
    assert len(pods) == 2 and not any(map(_oom_killed, pods))
    assert {s["restartCount"] for p in pods for s in p["status"]["containerStatuses"]} == {0}


def test_oom_fault_on_one_container_leaves_the_others_running(
    cluster: SandboxCluster, core: client.CoreV1Api
) -> None:
    def container(name: str, memory: str) -> dict[str, Any]:
        return {"name": name, "image": "busybox:1.36", "resources": {"limits": {"memory": memory}}}

    cluster.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "duo", "namespace": "demo"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "duo"}},
                "template": {
                    "metadata": {"labels": {"app": "duo"}},
                    "spec": {"containers": [container("main", "64Mi"), container("sidecar", "32Mi")]},
                },
            },
        }
    )
    cluster.wait_until(lambda: deployment_ready(cluster, "demo", "duo"))
    cluster.inject_fault("oom", namespace="demo", deployment="duo", container="main", memory="100Mi")
    cluster.wait_until(lambda: len(_crashing(cluster, "app=duo")) == 1)
    [pod] = cluster.list("pods", "demo", labels="app=duo")
    cluster.wait_until(
        lambda: (
            core.read_namespaced_pod(pod["metadata"]["name"], "demo")
            .status.container_statuses[0]
            .restart_count
            >= 1
        )
    )
    read = core.read_namespaced_pod(pod["metadata"]["name"], "demo")
    statuses = {s.name: s for s in read.status.container_statuses}
    assert statuses["main"].last_state.terminated.reason == "OOMKilled" and statuses["main"].ready is False
    assert statuses["sidecar"].restart_count == 0 and statuses["sidecar"].ready is True
    assert statuses["sidecar"].last_state.terminated is None and statuses["sidecar"].state.running is not None
    conditions = {c.type: c for c in read.status.conditions}
    assert conditions["Ready"].status == "False"
    assert conditions["Ready"].message == "containers with unready status: [main]"


def _post_fault(cluster: SandboxCluster, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(
        cluster.url + "/sandbox/faults",
        method="POST",
        data=json.dumps({"type": "oom", "namespace": "demo", **body}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, str(json.loads(err.read())["message"])


def test_oom_fault_parameters_are_checked_over_http(cluster: SandboxCluster) -> None:
    code, message = _post_fault(cluster, {"deployment": "api", "container": "nope"})
    assert code == 400 and "deployment demo/api has no container 'nope' (containers: api)" in message
    code, message = _post_fault(cluster, {"deployment": "api", "memory": "lots"})
    assert code == 400 and "memory 'lots' is not a Kubernetes quantity" in message
    code, message = _post_fault(cluster, {"type": "crashloop", "deployment": "api", "memory": "1Gi"})
    assert code == 400 and "apply to the oom fault only" in message
    unlimited = cluster.get("deployments", "demo", "web")
    assert unlimited is not None
    unlimited["metadata"] = {"name": "free", "namespace": "demo"}
    unlimited["spec"]["template"]["spec"]["containers"][0]["resources"] = {}
    cluster.apply(unlimited)
    code, message = _post_fault(cluster, {"deployment": "free"})
    assert code == 400 and "needs `memory` (what the container needs)" in message
    assert cluster.faults() == []
    code, _ = _post_fault(cluster, {"deployment": "api", "memory": "1Gi", "container": "api"})
    assert code == 201 and [f["needs"] for f in cluster.faults()] == [{"api": str(2**30)}]


def test_a_need_below_the_limit_shows_only_once_the_limit_is_lowered(
    cluster: SandboxCluster, apps: client.AppsV1Api
) -> None:
    code, _ = _post_fault(cluster, {"deployment": "api", "memory": "200Mi"})
    assert code == 201
    time.sleep(0.5)  # several controller ticks: the 256Mi pods have what they need
    assert len(ready_pods(cluster, "demo", "app=api")) == 2 and not _crashing(cluster, "app=api")
    _set_api_memory_limit(apps, "128Mi")  # a bad rollout: its new pods run out of memory
    cluster.wait_until(lambda: len(_crashing(cluster, "app=api")) == 2)
    assert all(map(_oom_killed, _crashing(cluster, "app=api")))
    assert len(ready_pods(cluster, "demo", "app=api")) == 2  # the old ReplicaSet's pods stay
