"""Label/field selectors on list, and the strategic-merge / JSON-patch / merge-patch flavours."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubernaut.sandbox import SandboxCluster
from kubernaut.sandbox.patching import strategic_merge_patch
from kubernaut.sandbox.selectors import labels_match, parse_label_selector

from .conftest import deployment_ready


def test_label_selector_grammar() -> None:
    requirements = parse_label_selector("a=b,c!=d,e in (x,y),!f,g")
    assert labels_match(requirements, {"a": "b", "e": "y", "g": ""})
    assert not labels_match(requirements, {"a": "b", "e": "z", "g": ""})
    assert not labels_match(requirements, {"a": "b", "e": "x", "g": "", "f": "1"})
    assert not labels_match(requirements, {"a": "b", "c": "d", "e": "x", "g": ""})
    assert labels_match(parse_label_selector("k notin (v)"), {})


def test_label_selectors_on_list(core: client.CoreV1Api) -> None:
    def names(selector: str) -> set[str]:
        return {
            p.metadata.labels["app"] for p in core.list_namespaced_pod("demo", label_selector=selector).items
        }

    assert names("app=web") == {"web"}
    assert names("app!=web") == {"api"}
    assert names("app in (web,api),tier=backend") == {"api"}
    assert names("!missing,app notin (web)") == {"api"}
    assert len(core.list_namespaced_pod("demo", label_selector="app=web").items) == 3
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod("demo", label_selector="app in (web")
    assert err.value.status == 400


def test_field_selectors_on_list(core: client.CoreV1Api) -> None:
    pods = core.list_pod_for_all_namespaces().items
    target = pods[0]
    by_name = core.list_pod_for_all_namespaces(field_selector=f"metadata.name={target.metadata.name}").items
    assert [p.metadata.name for p in by_name] == [target.metadata.name]
    node = target.spec.node_name
    on_node = core.list_namespaced_pod(
        "demo", field_selector=f"spec.nodeName={node},status.phase=Running"
    ).items
    assert on_node and all(p.spec.node_name == node for p in on_node)
    assert core.list_namespaced_pod("demo", field_selector="metadata.namespace!=demo").items == []
    assert core.list_namespaced_pod("demo", field_selector="status.phase=Pending").items == []
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod("demo", field_selector="spec.bogus=1")
    assert err.value.status == 400


def test_strategic_merge_keeps_other_containers(apps: client.AppsV1Api, cluster: SandboxCluster) -> None:
    apps.patch_namespaced_deployment(
        "web",
        "demo",
        {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:1.36"}]}}}},
    )
    apps.patch_namespaced_deployment(
        "web",
        "demo",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "web", "image": "nginx:1.28", "env": [{"name": "A", "value": "1"}]}
                        ]
                    }
                }
            }
        },
    )
    containers = apps.read_namespaced_deployment("web", "demo").spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("web", "nginx:1.28"), ("sidecar", "busybox:1.36")]
    assert containers[0].ports[0].container_port == 80  # untouched fields of the merged item survive
    apps.patch_namespaced_deployment(
        "web",
        "demo",
        {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}},
    )
    assert [c.name for c in apps.read_namespaced_deployment("web", "demo").spec.template.spec.containers] == [
        "web"
    ]
    cluster.wait_until(lambda: deployment_ready(cluster, "demo", "web"))


def test_strategic_merge_lists_without_merge_key_are_replaced() -> None:
    node = {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}, "metadata": {"finalizers": ["x"]}}
    patched = strategic_merge_patch(
        node, {"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}]}, "metadata": {"finalizers": ["y"]}}
    )
    assert patched["spec"]["taints"] == [{"key": "b", "effect": "NoSchedule"}]
    assert patched["metadata"]["finalizers"] == ["x", "y"]  # a patchStrategy=merge list of scalars


def test_json_patch_and_failing_test_op(core: client.CoreV1Api) -> None:
    core.patch_namespaced_config_map(
        "web-config",
        "demo",
        [
            {"op": "test", "path": "/data/LOG_LEVEL", "value": "info"},
            {"op": "replace", "path": "/data/LOG_LEVEL", "value": "debug"},
            {"op": "add", "path": "/data/NEW", "value": "1"},
            {"op": "remove", "path": "/data/UPSTREAM"},
        ],
    )
    assert core.read_namespaced_config_map("web-config", "demo").data == {"LOG_LEVEL": "debug", "NEW": "1"}
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(
            "web-config",
            "demo",
            [
                {"op": "test", "path": "/data/LOG_LEVEL", "value": "info"},
                {"op": "replace", "path": "/data/LOG_LEVEL", "value": "warn"},
            ],
        )
    assert err.value.status == 422
    assert core.read_namespaced_config_map("web-config", "demo").data["LOG_LEVEL"] == "debug"


def test_merge_patch_replaces_lists_and_null_deletes(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    core.patch_namespaced_config_map(
        "web-config",
        "demo",
        {"data": {"UPSTREAM": None, "B": "2"}},
        _content_type="application/merge-patch+json",
    )
    assert core.read_namespaced_config_map("web-config", "demo").data == {"LOG_LEVEL": "info", "B": "2"}
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}}
    apps.patch_namespaced_deployment("web", "demo", patch, _content_type="application/merge-patch+json")
    (container,) = apps.read_namespaced_deployment("web", "demo").spec.template.spec.containers
    assert container.image == "nginx:1.28" and container.ports is None  # RFC 7386: lists are replaced whole
