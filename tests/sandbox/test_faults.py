"""Fault injection and its remediation."""

from __future__ import annotations

import datetime
import json
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
