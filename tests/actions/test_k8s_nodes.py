"""Node actions against the sandbox: cordon/uncordon, drain with PDBs, taints."""

from __future__ import annotations

from typing import Any

import pytest

from kubernaut.actions import ActionContext, ActionError, PreconditionFailed
from kubernaut.sandbox import SandboxCluster
from tests.actions.conftest import ConflictOnce, bump_annotation
from tests.actions.k8s_helpers import must_get, retry_ctx, run, wait_all_ready, workload

NODE = "sandbox-node-1"


def unschedulable(cluster: SandboxCluster, node: str = NODE) -> bool:
    return bool(must_get(cluster, "nodes", None, node)["spec"].get("unschedulable"))


def taints(cluster: SandboxCluster, node: str = NODE) -> list[dict[str, Any]]:
    return list(must_get(cluster, "nodes", None, node)["spec"].get("taints") or [])


def test_cordon_uncordon(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    with pytest.raises(ActionError, match="node ghost not found"):
        run(ctx, "cordon_node", node="ghost")
    _, _, dry = run(dry_ctx, "cordon_node", node=NODE)
    assert not dry.changed and not unschedulable(cluster)
    conflict_once.arm(bump_annotation(cluster, "nodes", None, NODE))
    action, params, result = run(ctx, "cordon_node", node=NODE)
    assert len(conflict_once.writes) == 2 and result.undo == {"unschedulable": False}
    assert unschedulable(cluster)
    _, _, again = run(retry_ctx(ctx, result.undo), "cordon_node", node=NODE)
    assert again.undo == {"unschedulable": False} and not again.changed
    for _ in range(2):
        action.undo(ctx, params, result.undo)
        assert not unschedulable(cluster)
    run(ctx, "cordon_node", node=NODE)
    un, unparams, unresult = run(ctx, "uncordon_node", node=NODE)
    assert unresult.changed and not unschedulable(cluster)
    un.undo(ctx, unparams, unresult.undo)
    assert unschedulable(cluster)


def test_drain_evicts_honouring_pdb_and_skips_daemonsets(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext
) -> None:
    cluster.apply(workload("DaemonSet", "agent"))
    wait_all_ready(cluster, "agent", 2)
    wait_all_ready(cluster, "web", 3)
    cluster.apply(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}},
        }
    )

    def on_node(app: str) -> list[str]:
        return [
            p["metadata"]["name"]
            for p in cluster.list("pods", "demo", labels={"app": app})
            if p["spec"].get("nodeName") == NODE and not p["metadata"].get("deletionTimestamp")
        ]

    before = on_node("web") + on_node("api")
    assert before
    _, _, dry = run(dry_ctx, "drain_node", node=NODE)
    assert not dry.changed and not unschedulable(cluster) and on_node("web") + on_node("api") == before
    assert dry.output["blocked_by_pdb"]  # minAvailable 3 of 3: web pods cannot go

    # The drain retries the refused evictions until the budget allows them: let it, after a moment.
    import threading

    threading.Timer(1.0, lambda: cluster.delete("poddisruptionbudgets", "demo", "web")).start()
    action, params, result = run(ctx, "drain_node", node=NODE)
    assert result.undo == {"unschedulable": False} and unschedulable(cluster)
    assert on_node("web") == [] and on_node("api") == []
    assert len(on_node("agent")) == 1  # the DaemonSet pod stays
    wait_all_ready(cluster, "web", 3)
    assert all(p["spec"]["nodeName"] != NODE for p in cluster.list("pods", "demo", labels={"app": "web"}))
    for _ in range(2):
        action.undo(ctx, params, result.undo)
        assert not unschedulable(cluster)


def test_drain_refuses_bare_pods_and_missing_node(cluster: SandboxCluster, ctx: ActionContext) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bare", "namespace": "demo"},
            "spec": {"nodeName": NODE, "containers": [{"name": "m", "image": "busybox"}]},
        }
    )
    with pytest.raises(PreconditionFailed, match=r"without a controller.*demo/bare"):
        run(ctx, "drain_node", node=NODE)
    assert not unschedulable(cluster)
    with pytest.raises(ActionError, match="node ghost not found"):
        run(ctx, "drain_node", node="ghost")


def test_taint_untaint(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    other = {"key": "keep", "value": "me", "effect": "NoSchedule"}
    node = must_get(cluster, "nodes", None, NODE)
    node["spec"]["taints"] = [other]
    cluster.apply(node)
    _, _, dry = run(
        dry_ctx, "taint_node", node=NODE, key="example.com/broken", value="yes", effect="NoExecute"
    )
    assert not dry.changed and taints(cluster) == [other]
    conflict_once.arm(bump_annotation(cluster, "nodes", None, NODE))
    action, params, result = run(
        ctx, "taint_node", node=NODE, key="example.com/broken", value="yes", effect="NoExecute"
    )
    assert len(conflict_once.writes) == 2
    added = {"key": "example.com/broken", "value": "yes", "effect": "NoExecute"}
    assert taints(cluster) == [other, added]
    _, _, again = run(
        retry_ctx(ctx, result.undo),
        "taint_node",
        node=NODE,
        key="example.com/broken",
        value="yes",
        effect="NoExecute",
    )
    assert taints(cluster) == [other, added] and not again.changed
    for _ in range(2):
        action.undo(ctx, params, result.undo)
        assert taints(cluster) == [other]

    un, unparams, unresult = run(ctx, "untaint_node", node=NODE, key="keep")
    assert unresult.output["removed"] == [other] and taints(cluster) == []
    for _ in range(2):
        un.undo(ctx, unparams, unresult.undo)
        assert taints(cluster) == [other]
    with pytest.raises(ActionError, match="node ghost not found"):
        run(ctx, "taint_node", node="ghost", key="a")
