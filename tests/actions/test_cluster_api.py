"""Cluster API actions against the sandbox over HTTP (its MachineDeployment/MachineSet/Machine
controllers): scale a node group within bounds (dry run, a 409 retried, undo twice, the
policy's and the autoscaler's bounds) and replace the node behind a Machine (no undo: journaled
as such; a node Cluster API does not manage is refused)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kubernaut.actions import ActionContext, PreconditionFailed
from kubernaut.config import KubernautConfig
from kubernaut.policy import PolicyViolation
from kubernaut.sandbox import SandboxCluster
from tests.actions.conftest import ConflictOnce, bump_annotation, policy_ctx
from tests.actions.k8s_helpers import must_get, run


@pytest.fixture
def crds() -> tuple[str, ...]:
    return ("cluster.x-k8s.io",)


@pytest.fixture
def ctx(cluster: SandboxCluster) -> ActionContext:
    return ActionContext(
        timeout=60, poll_interval=0.1, logger=logging.getLogger("test"), _config=KubernautConfig()
    )


def node_group(replicas: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {"pool": "workers"}
    return {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "MachineDeployment",
        "metadata": {"name": "workers", "namespace": "capi", "annotations": annotations or {}},
        "spec": {
            "clusterName": "prod",
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "clusterName": "prod",
                    "version": "v1.33.0",
                    "bootstrap": {"configRef": {"kind": "KubeadmConfigTemplate", "name": "workers"}},
                    "infrastructureRef": {"kind": "DockerMachineTemplate", "name": "workers"},
                },
            },
        },
    }


def ready_machines(cluster: SandboxCluster) -> int:
    md = must_get(cluster, "machinedeployments", "capi", "workers")
    return int((md.get("status") or {}).get("readyReplicas") or 0)


def machine_nodes(cluster: SandboxCluster) -> list[str]:
    return sorted(
        n["metadata"]["name"]
        for n in cluster.list("nodes")
        if "cluster.x-k8s.io/machine" in (n["metadata"].get("annotations") or {})
    )


def settle(cluster: SandboxCluster, count: int) -> None:
    cluster.wait_until(
        lambda: (
            ready_machines(cluster) == count
            and len(cluster.list("machines", "capi")) == count
            and len(machine_nodes(cluster)) == count
        ),
        timeout=20,
    )


def test_scale_node_group_within_bounds_and_undo(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    cluster.apply(node_group(2, {"cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size": "4"}))
    settle(cluster, 2)

    _, _, dry = run(dry_ctx, "scale_node_group", namespace="capi", machine_deployment="workers", delta=1)
    assert (
        not dry.changed
        and must_get(cluster, "machinedeployments", "capi", "workers")["spec"]["replicas"] == 2
    )

    journal: list[dict[str, Any]] = []
    ctx.save_undo = journal.append
    before = machine_nodes(cluster)  # node names are the machines' names
    conflict_once.arm(bump_annotation(cluster, "machinedeployments", "capi", "workers"))
    action, params, result = run(
        ctx, "scale_node_group", namespace="capi", machine_deployment="workers", delta=1
    )
    assert conflict_once.retried()  # the 409 was re-read and retried
    assert journal[0] == result.undo == {"replicas": 2, "machines": before} and result.changed
    assert result.output["replicas"] == 3
    assert ready_machines(cluster) == 3 and len(machine_nodes(cluster)) == 3  # the wait saw the nodes

    with pytest.raises(PreconditionFailed, match="above the upper bound 4"):  # the autoscaler's max-size
        run(ctx, "scale_node_group", namespace="capi", machine_deployment="workers", replicas=5)
    with pytest.raises(PolicyViolation, match="exceed the limit of 2"):
        run(
            policy_ctx(max_replicas=2),
            "scale_node_group",
            namespace="capi",
            machine_deployment="workers",
            replicas=3,
        )
    with pytest.raises(PreconditionFailed, match="below the lower bound 1"):
        run(ctx, "scale_node_group", namespace="capi", machine_deployment="workers", replicas=0)

    restored = action.undo(ctx, params, result.undo)
    assert restored["restored"] is True and len(restored["deleting"]) == 1
    settle(cluster, 2)
    assert machine_nodes(cluster) == before  # the machine it added went, not an older one
    assert action.undo(ctx, params, result.undo)["restored"] is False  # twice: harmless


def test_replace_node_deletes_its_machine_and_the_machineset_makes_a_new_one(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext
) -> None:
    cluster.apply(node_group(2))
    settle(cluster, 2)
    old = machine_nodes(cluster)[0]
    old_machine = must_get(cluster, "nodes", None, old)["metadata"]["annotations"]["cluster.x-k8s.io/machine"]

    _, _, dry = run(dry_ctx, "replace_node", node=old)
    assert not dry.changed and cluster.get("machines", "capi", old_machine) is not None

    journal: list[dict[str, Any]] = []
    ctx.save_undo = journal.append
    _, _, result = run(ctx, "replace_node", node=old)
    assert len(journal) == 1 and list(journal[0]) == ["no_undo"]  # journaled before the delete
    assert "cannot be brought back" in journal[0]["no_undo"]  # the rollback reports it not restorable
    assert result.output["machine"] == f"capi/{old_machine}" and result.output["machineset"].startswith(
        "workers-"
    )
    assert cluster.get("machines", "capi", old_machine) is None and cluster.get("nodes", None, old) is None
    settle(cluster, 2)
    assert old not in machine_nodes(cluster)

    with pytest.raises(PreconditionFailed, match="not managed by Cluster API"):
        run(ctx, "replace_node", node="sandbox-node-1")
    with pytest.raises(PolicyViolation, match="unschedulable nodes would exceed"):  # one node out at a time
        cluster_node = machine_nodes(cluster)[0]
        node = must_get(cluster, "nodes", None, "sandbox-node-2")
        node["spec"]["unschedulable"] = True
        cluster.apply(node)
        run(ctx, "replace_node", node=cluster_node)
