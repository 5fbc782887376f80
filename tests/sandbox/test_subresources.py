"""Scale, status, logs and eviction (with PodDisruptionBudgets)."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubernaut.sandbox import SandboxCluster

from .conftest import deployment_ready, ready_pods


def test_scale_get_put_patch(apps: client.AppsV1Api, cluster: SandboxCluster) -> None:
    scale = apps.read_namespaced_deployment_scale("web", "demo")
    assert isinstance(scale, client.V1Scale)
    assert scale.spec.replicas == 3 and scale.status.selector == "app=web"
    scale.spec.replicas = 5
    assert apps.replace_namespaced_deployment_scale("web", "demo", scale).spec.replicas == 5
    cluster.wait_until(lambda: len(ready_pods(cluster, "demo", "app=web")) == 5)
    with pytest.raises(ApiException) as err:  # the same (now stale) resourceVersion
        apps.replace_namespaced_deployment_scale("web", "demo", scale)
    assert err.value.status == 409
    apps.patch_namespaced_deployment_scale("web", "demo", {"spec": {"replicas": 1}})
    cluster.wait_until(lambda: len(cluster.list("pods", "demo", labels="app=web")) == 1)
    cluster.wait_until(lambda: deployment_ready(cluster, "demo", "web"))
    assert apps.read_namespaced_deployment("web", "demo").status.replicas == 1


def test_replace_deployment_via_put(apps: client.AppsV1Api, cluster: SandboxCluster) -> None:
    deployment = apps.read_namespaced_deployment("api", "demo")
    deployment.spec.replicas = 4
    replaced = apps.replace_namespaced_deployment("api", "demo", deployment)
    assert replaced.spec.replicas == 4
    cluster.wait_until(lambda: len(ready_pods(cluster, "demo", "app=api")) == 4)


def test_status_subresource_patch(apps: client.AppsV1Api) -> None:
    apps.patch_namespaced_deployment("web", "demo", {"status": {"replicas": 99}})  # ignored on main resource
    assert apps.read_namespaced_deployment("web", "demo").status.replicas == 3
    patched = apps.patch_namespaced_deployment_status("web", "demo", {"status": {"collisionCount": 2}})
    assert patched.status.collision_count == 2


def test_logs_are_text_with_tail(core: client.CoreV1Api, cluster: SandboxCluster) -> None:
    name = ready_pods(cluster, "demo", "app=web")[0]["metadata"]["name"]
    text = core.read_namespaced_pod_log(name, "demo", _preload_content=False).data.decode()
    assert text.splitlines()[0].startswith("Starting web (nginx:1.27)")
    tail = core.read_namespaced_pod_log(name, "demo", tail_lines=1, _preload_content=False).data.decode()
    assert tail == "Ready to accept connections\n"
    assert (
        core.read_namespaced_pod_log(name, "demo", container="web", _preload_content=False).data.decode()
        == text
    )
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log(name, "demo", previous=True)
    assert err.value.status == 400
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log(name, "demo", container="nope")
    assert err.value.status == 400


def test_eviction_deletes_pod(core: client.CoreV1Api, cluster: SandboxCluster) -> None:
    name = ready_pods(cluster, "demo", "app=web")[0]["metadata"]["name"]
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace="demo"))
    core.create_namespaced_pod_eviction(name, "demo", body)
    evicted = cluster.get("pods", "demo", name)  # graceful: Terminating, then gone
    assert evicted is None or evicted["metadata"]["deletionTimestamp"]
    cluster.wait_until(lambda: cluster.get("pods", "demo", name) is None)


def test_eviction_honours_pdb(
    core: client.CoreV1Api, policy: client.PolicyV1Api, cluster: SandboxCluster
) -> None:
    policy.create_namespaced_pod_disruption_budget(
        "demo",
        {
            "metadata": {"name": "web-pdb"},
            "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}},
        },
    )
    name = ready_pods(cluster, "demo", "app=web")[0]["metadata"]["name"]
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace="demo"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction(name, "demo", body)
    assert err.value.status == 429 and "disruption budget" in err.value.body
    assert cluster.get("pods", "demo", name) is not None
    cluster.wait_until(
        lambda: (
            (
                policy.read_namespaced_pod_disruption_budget("web-pdb", "demo").status
                or client.V1PodDisruptionBudgetStatus(
                    current_healthy=0, desired_healthy=0, disruptions_allowed=0, expected_pods=0
                )
            ).current_healthy
            == 3
        )
    )
    policy.patch_namespaced_pod_disruption_budget(
        "web-pdb", "demo", {"spec": {"minAvailable": None, "maxUnavailable": 1}}
    )
    core.create_namespaced_pod_eviction(name, "demo", body)  # one disruption is allowed now
    second = ready_pods(cluster, "demo", "app=web")[0]["metadata"]["name"]
    body2 = client.V1Eviction(metadata=client.V1ObjectMeta(name=second, namespace="demo"))
    with pytest.raises(ApiException) as err:  # the replacement is not ready yet: no more budget
        core.create_namespaced_pod_eviction(second, "demo", body2)
    assert err.value.status == 429
