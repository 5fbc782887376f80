"""The API surface through the official client: typed models, errors, metadata, PUT, dryRun, watch."""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from kubernaut.sandbox import SandboxCluster

from .conftest import ready_pods


def _status(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)  # type: ignore[no-any-return]


def _raw_get(cluster: SandboxCluster, path: str) -> tuple[int, Any]:
    with urllib.request.urlopen(cluster.url + path, timeout=5) as response:
        return response.status, json.loads(response.read())


def test_typed_pod_read(core: client.CoreV1Api, cluster: SandboxCluster) -> None:
    name = ready_pods(cluster, "demo", "app=web")[0]["metadata"]["name"]
    pod = core.read_namespaced_pod(name, "demo")
    assert isinstance(pod, client.V1Pod)
    assert pod.metadata.owner_references[0].kind == "ReplicaSet"
    assert pod.status.phase == "Running"
    assert pod.status.container_statuses[0].ready is True
    assert pod.spec.node_name in ("sandbox-node-1", "sandbox-node-2")


def test_list_kind_and_api_version(cluster: SandboxCluster) -> None:
    status, data = _raw_get(cluster, "/apis/apps/v1/namespaces/demo/deployments")
    assert status == 200
    assert data["kind"] == "DeploymentList" and data["apiVersion"] == "apps/v1"
    assert {item["metadata"]["name"] for item in data["items"]} == {"web", "api"}
    assert int(data["metadata"]["resourceVersion"]) > 0


def test_discovery_lists_resources(api_client: client.ApiClient) -> None:
    core_resources = client.CoreV1Api(api_client).get_api_resources()
    by_name = {r.name: r for r in core_resources.resources}
    assert by_name["pods"].namespaced and not by_name["nodes"].namespaced
    assert {"pods/log", "pods/eviction", "pods/status"} <= set(by_name)
    apps_resources = {r.name: r for r in client.AppsV1Api(api_client).get_api_resources().resources}
    assert apps_resources["deployments/scale"].kind == "Scale"
    groups = {g.name: g for g in client.ApisApi(api_client).get_api_versions().groups}
    assert {"apps", "autoscaling", "policy", "networking.k8s.io", "batch"} <= set(groups)
    assert groups["autoscaling"].preferred_version.version == "v2"
    assert client.PolicyV1Api(api_client).get_api_resources().resources[0].kind == "PodDisruptionBudget"


def test_version_and_api_with_trailing_slash(api_client: client.ApiClient, cluster: SandboxCluster) -> None:
    assert client.VersionApi(api_client).get_code().major == "1"
    assert _raw_get(cluster, "/version/")[1]["gitVersion"].startswith("v1.")
    assert _raw_get(cluster, "/api/")[1]["versions"] == ["v1"]
    assert _raw_get(cluster, "/apis/")[1]["kind"] == "APIGroupList"


def test_metadata_is_set_and_generation_bumps(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    cm = core.create_namespaced_config_map("demo", {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    assert cm.metadata.uid and cm.metadata.creation_timestamp and cm.metadata.resource_version
    cm2 = core.patch_namespaced_config_map("cfg", "demo", {"data": {"a": "2"}})
    assert int(cm2.metadata.resource_version) > int(cm.metadata.resource_version)
    assert cm2.metadata.uid == cm.metadata.uid
    dep = apps.read_namespaced_deployment("web", "demo")
    apps.patch_namespaced_deployment("web", "demo", {"metadata": {"labels": {"x": "y"}}})
    assert apps.read_namespaced_deployment("web", "demo").metadata.generation == dep.metadata.generation
    apps.patch_namespaced_deployment("web", "demo", {"spec": {"minReadySeconds": 1}})
    assert apps.read_namespaced_deployment("web", "demo").metadata.generation == dep.metadata.generation + 1


def test_not_found_already_exists_invalid(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("nope", "demo")
    assert err.value.status == 404
    body = _status(err.value)
    assert body["kind"] == "Status" and body["reason"] == "NotFound"
    assert body["details"] == {"name": "nope", "kind": "pods"}
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("demo", {"metadata": {"name": "web-config"}})
    assert err.value.status == 409 and _status(err.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("demo", {"metadata": {"name": "Bad_Name"}})
    assert err.value.status == 422 and _status(err.value)["reason"] == "Invalid"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("missing-ns", {"metadata": {"name": "x"}})
    assert err.value.status == 404


def test_stale_resource_version_conflicts(core: client.CoreV1Api) -> None:
    cm = core.read_namespaced_config_map("web-config", "demo")
    stale = cm.metadata.resource_version
    cm.data["LOG_LEVEL"] = "debug"
    core.replace_namespaced_config_map("web-config", "demo", cm)  # PUT with the current version works
    cm.data["LOG_LEVEL"] = "trace"
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("web-config", "demo", cm)  # the same version again is stale now
    assert err.value.status == 409 and _status(err.value)["reason"] == "Conflict"
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(
            "web-config", "demo", {"metadata": {"resourceVersion": stale}, "data": {"x": "1"}}
        )
    assert err.value.status == 409
    assert core.read_namespaced_config_map("web-config", "demo").data["LOG_LEVEL"] == "debug"


def test_put_missing_object_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("ghost", "demo", {"metadata": {"name": "ghost"}})
    assert err.value.status == 404


def test_dry_run_changes_nothing(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    before = apps.read_namespaced_deployment("web", "demo")
    result = apps.patch_namespaced_deployment("web", "demo", {"spec": {"replicas": 7}}, dry_run="All")
    assert result.spec.replicas == 7
    after = apps.read_namespaced_deployment("web", "demo")
    assert after.spec.replicas == 3 and after.metadata.resource_version == before.metadata.resource_version
    created = core.create_namespaced_config_map("demo", {"metadata": {"name": "dry"}}, dry_run="All")
    assert created.metadata.name == "dry"
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("dry", "demo")
    core.delete_namespaced_config_map("web-config", "demo", dry_run="All")
    assert core.read_namespaced_config_map("web-config", "demo").metadata.name == "web-config"


def test_delete_returns_status_or_object(core: client.CoreV1Api, cluster: SandboxCluster) -> None:
    status = core.delete_namespaced_config_map("web-config", "demo")
    assert status.status == "Success" and status.details.name == "web-config"
    pod_name = ready_pods(cluster, "demo", "app=api")[0]["metadata"]["name"]
    deleted = core.delete_namespaced_pod(pod_name, "demo")
    # A running pod is deleted gracefully: Terminating until its kubelet has stopped it.
    assert deleted.metadata.name == pod_name and deleted.metadata.deletion_timestamp is not None
    cluster.wait_until(lambda: cluster.get("pods", "demo", pod_name) is None)


def test_finalizers_delay_deletion(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("demo", {"metadata": {"name": "fin", "finalizers": ["x/y"]}})
    core.delete_namespaced_config_map("fin", "demo")
    marked = core.read_namespaced_config_map("fin", "demo")
    assert marked.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("fin", "demo", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("fin", "demo")
    assert err.value.status == 404


def test_pod_spec_is_immutable(core: client.CoreV1Api, cluster: SandboxCluster) -> None:
    pod_name = ready_pods(cluster, "demo", "app=web")[0]["metadata"]["name"]
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_pod(pod_name, "demo", {"spec": {"restartPolicy": "Never"}})
    assert err.value.status == 422


def test_watch_streams_events(core: client.CoreV1Api) -> None:
    events: list[tuple[str, str]] = []
    started = threading.Event()

    def consume() -> None:
        stream = watch.Watch()
        for event in stream.stream(
            core.list_namespaced_config_map, "demo", label_selector="w=1", timeout_seconds=3
        ):
            started.set()
            events.append((event["type"], event["object"].metadata.name))
            if len(events) == 3:
                stream.stop()

    core.create_namespaced_config_map("demo", {"metadata": {"name": "w0", "labels": {"w": "1"}}})
    thread = threading.Thread(target=consume)
    thread.start()
    assert started.wait(3)  # the initial ADDED of w0 arrived, so the stream is live
    core.create_namespaced_config_map("demo", {"metadata": {"name": "other"}})  # filtered out
    core.create_namespaced_config_map("demo", {"metadata": {"name": "w1", "labels": {"w": "1"}}})
    core.delete_namespaced_config_map("w1", "demo")
    thread.join(5)
    assert events == [("ADDED", "w0"), ("ADDED", "w1"), ("DELETED", "w1")]


def test_watch_resumes_from_resource_version(core: client.CoreV1Api) -> None:
    listed = core.list_namespaced_config_map("demo")
    core.create_namespaced_config_map("demo", {"metadata": {"name": "later"}})
    stream = watch.Watch()
    names = [
        (e["type"], e["object"].metadata.name)
        for e in stream.stream(
            core.list_namespaced_config_map,
            "demo",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=1,
        )
    ]
    assert names == [("ADDED", "later")]
