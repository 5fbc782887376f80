"""Label/field selectors on list, and the strategic-merge / JSON-patch / merge-patch flavours."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from kubernaut.sandbox import SandboxCluster
from kubernaut.sandbox.errors import ApiError
from kubernaut.sandbox.patching import STRATEGIC_MERGE_PATCH as STRATEGIC
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
    containers = apps.read_namespaced_deployment("web", "demo").spec.template.spec.containers
    # A new item has no place in the live list: the real server puts it before the others.
    assert [c.name for c in containers] == ["sidecar", "web"]
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
    assert [(c.name, c.image) for c in containers] == [("sidecar", "busybox:1.36"), ("web", "nginx:1.28")]
    assert containers[1].ports[0].container_port == 80  # untouched fields of the merged item survive
    apps.patch_namespaced_deployment(
        "web",
        "demo",
        {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}},
    )
    assert [c.name for c in apps.read_namespaced_deployment("web", "demo").spec.template.spec.containers] == [
        "web"
    ]
    cluster.wait_until(lambda: deployment_ready(cluster, "demo", "web"))


def test_strategic_merge_of_a_container_by_name_keeps_its_ports_and_env(apps: client.AppsV1Api) -> None:
    def web() -> Any:
        return apps.read_namespaced_deployment("web", "demo").spec.template.spec.containers[0]

    template = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "web", "env": [{"name": "A", "value": "1"}]}]}}
        }
    }
    apps.patch_namespaced_deployment("web", "demo", template)
    # kubectl patch's default: the container is found by its merge key (name), its lists by theirs.
    kubectl_style = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.28",
                            "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "one"}],
                        }
                    ]
                }
            }
        }
    }
    apps.patch_namespaced_deployment("web", "demo", kubectl_style)
    container = web()
    assert container.image == "nginx:1.28"
    assert [(p.name, p.container_port) for p in container.ports] == [("http", 80)]
    assert [(e.name, e.value) for e in container.env] == [("B", "2"), ("A", "one")]
    assert container.resources.limits == {"memory": "128Mi"}  # maps merge, they are not replaced

    # `$patch: delete` removes one item of a merge list (env A, port 80); null removes a key.
    apps.patch_namespaced_deployment(
        "web",
        "demo",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "env": [{"name": "A", "$patch": "delete"}],
                                "ports": [{"containerPort": 80, "$patch": "delete"}],
                                "resources": {"limits": None},
                            }
                        ]
                    }
                }
            }
        },
    )
    container = web()
    assert [e.name for e in container.env] == ["B"] and container.ports is None  # emptied: omitted
    assert container.resources.limits is None and container.resources.requests["cpu"] == "50m"

    # `$patch: replace` in a list: the patch's items are the whole list.
    apps.patch_namespaced_deployment(
        "web",
        "demo",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "web", "env": [{"name": "C", "value": "3"}, {"$patch": "replace"}]}
                        ]
                    }
                }
            }
        },
    )
    assert [e.name for e in web().env] == ["C"]

    # A missing merge key is refused as the real server refuses it (500, no reason).
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(
            "web", "demo", {"spec": {"template": {"spec": {"containers": [{"image": "nginx:1.29"}]}}}}
        )
    assert err.value.status == 500
    assert "does not contain declared merge key: name" in json.loads(err.value.body)["message"]
    assert web().image == "nginx:1.28"


def test_strategic_merge_directives_on_maps() -> None:
    deployment = {
        "spec": {
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "template": {"spec": {"securityContext": {"runAsUser": 1000}, "nodeSelector": {"a": "1"}}},
        }
    }
    patched = strategic_merge_patch(
        deployment,
        {
            "spec": {
                # DeploymentSpec.strategy is patchStrategy=retainKeys: unlisted keys are cleared.
                "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                "template": {
                    "spec": {
                        "securityContext": {"$patch": "delete"},
                        "nodeSelector": {"$patch": "replace", "b": "2"},
                    }
                },
            }
        },
        "Deployment",
    )
    assert patched["spec"]["strategy"] == {"type": "Recreate"}
    assert patched["spec"]["template"]["spec"] == {"securityContext": {}, "nodeSelector": {"b": "2"}}
    with pytest.raises(ApiError) as err:
        strategic_merge_patch(
            deployment, {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}, "Deployment"
        )
    assert err.value.status == 400 and "retainKeys" in (err.value.message or "")
    # PodDisruptionBudgetSpec.selector is patchStrategy=replace: never merged.
    pdb = {"spec": {"selector": {"matchLabels": {"app": "web"}}}}
    selector = {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}
    assert strategic_merge_patch(pdb, {"spec": {"selector": selector}}, "PodDisruptionBudget") == {
        "spec": {"selector": selector}
    }


def test_strategic_merge_is_refused_for_custom_resources(tmp_path: Path) -> None:
    """A CRD has no Go type, so no merge keys: the real server answers 415 to a strategic merge
    patch and takes a JSON merge patch."""
    with SandboxCluster(crds=("snapshot.storage.k8s.io",)) as sandbox:
        sandbox.seed_demo()
        api = config.new_client_from_config(config_file=str(sandbox.write_kubeconfig(tmp_path / "kc")))
        custom = client.CustomObjectsApi(api)
        group, version, plural = "snapshot.storage.k8s.io", "v1", "volumesnapshots"
        custom.create_namespaced_custom_object(
            group,
            version,
            "demo",
            plural,
            {
                "apiVersion": f"{group}/{version}",
                "kind": "VolumeSnapshot",
                "metadata": {"name": "snap"},
                "spec": {"source": {"persistentVolumeClaimName": "data"}},
            },
        )
        patch = {"metadata": {"labels": {"team": "sre"}}}
        with pytest.raises(ApiException) as err:
            custom.patch_namespaced_custom_object(
                group, version, "demo", plural, "snap", patch, _content_type=STRATEGIC
            )
        assert err.value.status == 415
        body = json.loads(err.value.body)
        assert body["reason"] == "UnsupportedMediaType"
        assert "application/merge-patch+json" in body["message"] and STRATEGIC not in body["message"]
        patched = custom.patch_namespaced_custom_object(
            group, version, "demo", plural, "snap", patch, _content_type="application/merge-patch+json"
        )
        assert patched["metadata"]["labels"] == {"team": "sre"}
        api.close()


def test_strategic_merge_lists_without_merge_key_are_replaced() -> None:
    node = {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}, "metadata": {"finalizers": ["x"]}}
    patched = strategic_merge_patch(
        node,
        {"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}]}, "metadata": {"finalizers": ["y"]}},
        "Node",
    )
    assert patched["spec"]["taints"] == [{"key": "b", "effect": "NoSchedule"}]  # NodeSpec.taints: atomic
    assert patched["metadata"]["finalizers"] == ["y", "x"]  # a patchStrategy=merge list of scalars
    patched = strategic_merge_patch(
        patched, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}, "Node"
    )
    assert patched["metadata"]["finalizers"] == ["y"]
    # $setElementOrder orders the merged list (Service ports merge on `port`).
    service = {"spec": {"ports": [{"port": 80, "name": "a"}, {"port": 90, "name": "b"}]}}
    patched = strategic_merge_patch(
        service,
        {
            "spec": {
                "$setElementOrder/ports": [{"port": 90}, {"port": 80}],
                "ports": [{"port": 90, "name": "c"}],
            }
        },
        "Service",
    )
    assert patched["spec"]["ports"] == [{"port": 90, "name": "c"}, {"port": 80, "name": "a"}]


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
