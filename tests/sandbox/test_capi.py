"""The sandbox's Cluster API controllers (cluster.x-k8s.io/v1beta1 served as CRDs): a
MachineDeployment makes a MachineSet, Machines (finalizer, phases, nodeRef) and their Nodes
(cluster.x-k8s.io/machine annotation, providerID); orphans are adopted; a scale-down deletes
the annotated Machine first; a deleted Machine takes its Node (and its pods) with it and is
replaced. Without the CRDs the group is not served."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubernaut.sandbox import SandboxCluster

GROUP, VERSION = "cluster.x-k8s.io", "v1beta1"


@pytest.fixture
def capi(tmp_path: Any) -> Iterator[tuple[SandboxCluster, client.CustomObjectsApi]]:
    with SandboxCluster(pod_ready_delay=0.1, tick=0.05, crds=(GROUP,)) as sandbox:
        api = config.new_client_from_config(config_file=str(sandbox.write_kubeconfig(tmp_path / "kc")))
        yield sandbox, client.CustomObjectsApi(api)
        api.close()


def md(replicas: int) -> dict[str, Any]:
    labels = {"pool": "workers"}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MachineDeployment",
        "metadata": {"name": "workers", "namespace": "capi"},
        "spec": {
            "clusterName": "prod",
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"clusterName": "prod", "version": "v1.33.0"},
            },
        },
    }


def machines(sandbox: SandboxCluster) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in sandbox.list("machines", "capi")}


def ready(sandbox: SandboxCluster, count: int) -> bool:
    status = (sandbox.get("machinedeployments", "capi", "workers") or {}).get("status") or {}
    return status.get("readyReplicas") == count == status.get("replicas") and len(machines(sandbox)) == count


def test_machinedeployment_makes_machines_and_nodes(
    capi: tuple[SandboxCluster, client.CustomObjectsApi],
) -> None:
    sandbox, api = capi
    sandbox.apply(md(2))
    sandbox.wait_until(lambda: ready(sandbox, 2))
    (ms,) = api.list_namespaced_custom_object(GROUP, VERSION, "capi", "machinesets")["items"]
    assert ms["metadata"]["ownerReferences"][0]["kind"] == "MachineDeployment" and ms["spec"]["replicas"] == 2
    for name, machine in machines(sandbox).items():
        assert machine["metadata"]["finalizers"] == ["machine.cluster.x-k8s.io"]
        assert machine["metadata"]["labels"]["cluster.x-k8s.io/set-name"] == ms["metadata"]["name"]
        assert machine["status"]["phase"] == "Running" and machine["status"]["nodeRef"]["name"] == name
        node = sandbox.get("nodes", None, name)
        assert node is not None and node["metadata"]["annotations"]["cluster.x-k8s.io/machine"] == name
        assert node["spec"]["providerID"] == machine["spec"]["providerID"] == f"sandbox://capi/{name}"
    md_status = api.get_namespaced_custom_object(GROUP, VERSION, "capi", "machinedeployments", "workers")[
        "status"
    ]
    assert md_status["phase"] == "Running" and md_status["selector"] == "pool=workers"


def test_scale_down_deletes_the_annotated_machine_and_a_deleted_machine_is_replaced(
    capi: tuple[SandboxCluster, client.CustomObjectsApi],
) -> None:
    sandbox, api = capi
    sandbox.apply(md(3))
    sandbox.wait_until(lambda: ready(sandbox, 3))
    doomed = sorted(machines(sandbox))[1]
    machine = machines(sandbox)[doomed]
    machine["metadata"].setdefault("annotations", {})["cluster.x-k8s.io/delete-machine"] = "yes"
    sandbox.apply(machine)
    api.patch_namespaced_custom_object(
        GROUP, VERSION, "capi", "machinedeployments", "workers", {"spec": {"replicas": 2}}
    )
    sandbox.wait_until(lambda: ready(sandbox, 2) and doomed not in machines(sandbox))
    assert sandbox.get("nodes", None, doomed) is None  # its node went with it

    victim = sorted(machines(sandbox))[0]
    sandbox.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bound", "namespace": "default"},
            "spec": {"nodeName": victim, "containers": [{"name": "c", "image": "busybox"}]},
        }
    )
    api.delete_namespaced_custom_object(GROUP, VERSION, "capi", "machines", victim)
    seen = api.get_namespaced_custom_object(GROUP, VERSION, "capi", "machines", victim)
    assert seen["metadata"]["deletionTimestamp"]  # held by its finalizer until the node is gone
    sandbox.wait_until(lambda: ready(sandbox, 2) and victim not in machines(sandbox))
    assert sandbox.get("nodes", None, victim) is None and sandbox.get("pods", "default", "bound") is None


def test_orphans_are_adopted(capi: tuple[SandboxCluster, client.CustomObjectsApi]) -> None:
    sandbox, _ = capi
    labels = {"pool": "workers"}
    sandbox.apply(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MachineSet",
            "metadata": {"name": "workers-a", "namespace": "capi", "labels": labels},
            "spec": {
                "clusterName": "prod",
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"clusterName": "prod"}},
            },
        }
    )
    sandbox.apply(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Machine",
            "metadata": {"name": "worker-1", "namespace": "capi", "labels": labels},
            "spec": {"clusterName": "prod"},
        }
    )
    sandbox.apply(md(2))
    sandbox.wait_until(lambda: ready(sandbox, 2))
    assert "worker-1" in machines(sandbox) and sandbox.get("nodes", None, "worker-1") is not None
    assert [s["metadata"]["name"] for s in sandbox.list("machinesets", "capi")] == ["workers-a"]


def test_not_served_without_the_crds(tmp_path: Any) -> None:
    with SandboxCluster(crds=()) as sandbox:
        api = config.new_client_from_config(config_file=str(sandbox.write_kubeconfig(tmp_path / "kc")))
        with pytest.raises(ApiException) as err:
            client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, "capi", "machines")
        api.close()
    assert err.value.status == 404
