"""The safety policy: each rule refuses the step (dry-run too), names the rule and the object,
and leaves the cluster unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from kubernaut.policy import PolicyViolation
from kubernaut.sandbox import SandboxCluster
from tests.actions.conftest import policy_ctx
from tests.actions.k8s_helpers import must_get, run, workload


@pytest.fixture(params=[False, True], ids=["real", "dry-run"])
def dry_run(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def refused(
    rule: str, dry_run: bool, action: str, policy: dict[str, Any] | None = None, **params: Any
) -> PolicyViolation:
    with pytest.raises(PolicyViolation) as info:
        run(policy_ctx(dry_run, **(policy or {})), action, **params)
    assert info.value.rule == rule and info.value.record["rule"] == rule
    assert rule in str(info.value)
    return info.value


def test_protected_namespace(cluster: SandboxCluster, dry_run: bool) -> None:
    cluster.apply(workload("Deployment", "coredns", replicas=1, namespace="kube-system"))
    violation = refused(
        "protected_namespace",
        dry_run,
        "scale_deployment",
        namespace="kube-system",
        deployment="coredns",
        replicas=3,
    )
    assert violation.record["target"] == "Deployment/kube-system/coredns"
    assert must_get(cluster, "deployments", "kube-system", "coredns")["spec"]["replicas"] == 1
    refused(
        "protected_namespace",
        dry_run,
        "update_configmap",
        namespace="kube-public",
        configmap="x",
        set={"a": "b"},
    )


def test_require_label(cluster: SandboxCluster, dry_run: bool) -> None:
    policy = {"require_label": "kubernaut.io/managed=true"}
    violation = refused(
        "require_label", dry_run, "scale_deployment", policy, namespace="demo", deployment="web", replicas=5
    )
    assert "kubernaut.io/managed=true" in violation.detail
    assert must_get(cluster, "deployments", "demo", "web")["spec"]["replicas"] == 3
    refused("require_label", dry_run, "cordon_node", policy, node="sandbox-node-1")
    assert not must_get(cluster, "nodes", None, "sandbox-node-1")["spec"].get("unschedulable")
    # Labelled: allowed.
    dep = must_get(cluster, "deployments", "demo", "api")
    dep["metadata"]["labels"]["kubernaut.io/managed"] = "true"
    cluster.apply(dep)
    _, _, result = run(
        policy_ctx(True, **policy), "scale_deployment", namespace="demo", deployment="api", replicas=3
    )
    assert result.output["replicas"] == 3


def test_max_replicas(cluster: SandboxCluster, dry_run: bool) -> None:
    refused(
        "max_replicas",
        dry_run,
        "scale_deployment",
        {"max_replicas": 4},
        namespace="demo",
        deployment="web",
        replicas=5,
    )
    assert must_get(cluster, "deployments", "demo", "web")["spec"]["replicas"] == 3
    cluster.apply(workload("StatefulSet", "db", replicas=1))
    refused(
        "max_replicas",
        dry_run,
        "scale_statefulset",
        {"max_replicas": 4},
        namespace="demo",
        statefulset="db",
        replicas=9,
    )
    assert must_get(cluster, "statefulsets", "demo", "db")["spec"]["replicas"] == 1
    cluster.apply(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                "maxReplicas": 3,
            },
        }
    )
    refused(
        "max_replicas",
        dry_run,
        "update_hpa",
        {"max_replicas": 4},
        namespace="demo",
        hpa="web",
        max_replicas=100,
    )
    assert must_get(cluster, "horizontalpodautoscalers", "demo", "web")["spec"]["maxReplicas"] == 3


def test_max_resource_factor(cluster: SandboxCluster, dry_run: bool) -> None:
    before = must_get(cluster, "deployments", "demo", "api")["spec"]["template"]
    refused(
        "max_resource_factor",
        dry_run,
        "increase_resources",
        {"max_resource_factor": 2.0},
        namespace="demo",
        name="api",
        container="api",
        factor=3,
    )
    violation = refused(
        "max_resource_factor",
        dry_run,
        "increase_resources",
        {"max_resource_factor": 2.0},
        namespace="demo",
        name="api",
        container="api",
        limits={"memory": "1Gi"},
    )
    assert "factor 4" in violation.detail
    assert must_get(cluster, "deployments", "demo", "api")["spec"]["template"] == before


def test_max_nodes_unschedulable(cluster: SandboxCluster, dry_run: bool) -> None:
    node = must_get(cluster, "nodes", None, "sandbox-node-1")
    node["spec"]["unschedulable"] = True
    cluster.apply(node)
    for action in ("cordon_node", "drain_node"):
        violation = refused("max_nodes_unschedulable", dry_run, action, node="sandbox-node-2")
        assert "sandbox-node-1" in violation.detail
    assert not must_get(cluster, "nodes", None, "sandbox-node-2")["spec"].get("unschedulable")
    # Cordoning the node already cordoned does not add one: allowed.
    run(policy_ctx(dry_run), "cordon_node", node="sandbox-node-1")
