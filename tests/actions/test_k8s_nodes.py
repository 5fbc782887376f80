"""Node actions against the sandbox: cordon/uncordon, drain with PDBs, taints."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kubernaut.actions import (
    ActionContext,
    ActionError,
    NotRestorable,
    PreconditionFailed,
    VerificationFailed,
)
from kubernaut.sandbox import SandboxCluster
from tests.actions.conftest import ConflictOnce, bump_annotation
from tests.actions.k8s_helpers import must_get, ready, retry_ctx, run, wait_all_ready, workload

NODE = "sandbox-node-1"


def unschedulable(cluster: SandboxCluster, node: str = NODE) -> bool:
    return bool(must_get(cluster, "nodes", None, node)["spec"].get("unschedulable"))


def node_reported(cluster: SandboxCluster) -> None:
    """The sandbox's kubelet reports the node's status once at start: a write that would be a
    second, unplanned conflict in a test of conflict retries."""
    cluster.wait_until(lambda: must_get(cluster, "nodes", None, NODE).get("status", {}).get("conditions"))


def taints(cluster: SandboxCluster, node: str = NODE) -> list[dict[str, Any]]:
    return list(must_get(cluster, "nodes", None, node)["spec"].get("taints") or [])


def test_cordon_uncordon(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    with pytest.raises(ActionError, match="node ghost not found"):
        run(ctx, "cordon_node", node="ghost")
    node_reported(cluster)
    _, _, dry = run(dry_ctx, "cordon_node", node=NODE)
    assert not dry.changed and not unschedulable(cluster)
    conflict_once.arm(bump_annotation(cluster, "nodes", None, NODE))
    action, params, result = run(ctx, "cordon_node", node=NODE)
    assert conflict_once.retried() and result.undo == {"unschedulable": False}
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
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.list("pods", "demo")}
    _, _, dry = run(dry_ctx, "drain_node", node=NODE)
    assert not dry.changed and not unschedulable(cluster) and on_node("web") + on_node("api") == before
    assert dry.output["blocked_by_pdb"]  # minAvailable 3 of 3: web pods cannot go

    # The drain retries the refused evictions until the budget allows them: let it, after a moment.
    import threading

    threading.Timer(1.0, lambda: cluster.delete("poddisruptionbudgets", "demo", "web")).start()
    action, params, result = run(ctx, "drain_node", node=NODE)
    # The pods it takes away are journaled with the cordon, so that the undo can name them.
    assert result.undo == {
        "unschedulable": False,
        "pods": [{"pod": f"demo/{name}", "uid": uids[name]} for name in sorted(before)],
    }
    assert unschedulable(cluster)
    assert on_node("web") == [] and on_node("api") == []
    assert result.output["skipped"] == {"daemonset": [f"demo/{n}" for n in on_node("agent")]}
    assert len(on_node("agent")) == 1  # the DaemonSet pod stays
    wait_all_ready(cluster, "web", 3)
    assert all(p["spec"]["nodeName"] != NODE for p in cluster.list("pods", "demo", labels={"app": "web"}))
    # The node comes back; the evicted pods cannot (others replaced them): not_restorable, twice alike.
    for _ in range(2):
        with pytest.raises(NotRestorable, match=rf"node {NODE} uncordoned; .* cannot come back: demo/"):
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


def pinned(name: str, *, replicas: int = 1, **pod_spec: Any) -> dict[str, Any]:
    """A Deployment whose pods can only run on NODE (a drain leaves its replacements Pending)."""
    manifest = workload("Deployment", name, replicas=replicas)
    template = manifest["spec"]["template"]["spec"]
    template["nodeSelector"] = {"kubernetes.io/hostname": NODE}
    template["containers"] = [{"name": "main", "image": "nginx:1.27"}]
    template.update(pod_spec)
    return manifest


def on_node(cluster: SandboxCluster, app: str) -> list[dict[str, Any]]:
    """Pods of the app on NODE, Terminating ones included."""
    return [p for p in cluster.list("pods", "demo", labels={"app": app}) if p["spec"].get("nodeName") == NODE]


def test_drain_waits_until_evicted_pods_are_deleted(cluster: SandboxCluster, ctx: ActionContext) -> None:
    """kubectl drain's wait: an evicted pod is gone when the API has deleted it, not when it is
    marked Terminating (here its preStop hook sleeps 2 s first)."""
    stop = [{"name": "main", "image": "nginx:1.27", "lifecycle": {"preStop": {"sleep": {"seconds": 2}}}}]
    cluster.apply(pinned("slow", replicas=2, containers=stop))
    cluster.wait_until(lambda: len([p for p in on_node(cluster, "slow") if ready(p)]) == 2)
    started = time.monotonic()
    _, _, result = run(ctx, "drain_node", node=NODE)
    assert time.monotonic() - started > 1.5
    assert len(result.output["evicted"]) >= 2 and on_node(cluster, "slow") == []

    # Not gone within the step's timeout: the step fails and names the pod.
    run(ctx, "uncordon_node", node=NODE)
    stuck = [{"name": "main", "image": "nginx:1.27", "lifecycle": {"preStop": {"sleep": {"seconds": 60}}}}]
    cluster.apply(pinned("stuck", containers=stuck, terminationGracePeriodSeconds=60))
    cluster.wait_until(lambda: any(ready(p) for p in on_node(cluster, "stuck")))
    name = on_node(cluster, "stuck")[0]["metadata"]["name"]
    short = ActionContext(timeout=2, poll_interval=0.1, logger=ctx.logger, _config=ctx.config)
    with pytest.raises(VerificationFailed, match=rf"drain of node {NODE} .*demo/{name}"):
        run(short, "drain_node", node=NODE)
    assert on_node(cluster, "stuck")[0]["metadata"]["deletionTimestamp"]  # still Terminating


def test_drain_refuses_emptydir_and_daemonset_pods_unless_allowed(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    scratch = {"volumes": [{"name": "scratch", "emptyDir": {}}]}
    cluster.apply(pinned("cache", **scratch))
    cluster.apply(workload("DaemonSet", "agent"))
    cluster.wait_until(lambda: on_node(cluster, "cache") and on_node(cluster, "agent"))
    cache = f"demo/{on_node(cluster, 'cache')[0]['metadata']['name']}"
    agent = f"demo/{on_node(cluster, 'agent')[0]['metadata']['name']}"
    with pytest.raises(PreconditionFailed, match=rf"emptyDir volumes.*delete_emptydir_data: true\): {cache}"):
        run(ctx, "drain_node", node=NODE)
    with pytest.raises(
        PreconditionFailed, match=rf"DaemonSet pods \(set ignore_daemonsets: true.*\): {agent}"
    ):
        run(ctx, "drain_node", node=NODE, ignore_daemonsets=False, delete_emptydir_data=True)
    assert not unschedulable(cluster) and on_node(cluster, "cache")  # refused before any change

    # A completed pod holds no data worth keeping and no budget applies: deleted, even bare.
    done = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "done", "namespace": "demo", "labels": {"app": "done"}},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": "Never",
            "containers": [{"name": "m", "image": "busybox"}],
        },
        "status": {"phase": "Succeeded"},
    }
    cluster.apply(done)
    action, params, result = run(ctx, "drain_node", node=NODE, delete_emptydir_data=True)
    assert cache in result.output["evicted"] and result.output["deleted_completed"] == ["demo/done"]
    assert on_node(cluster, "cache") == [] and cluster.get("pods", "demo", "done") is None
    assert [p["metadata"]["name"] for p in on_node(cluster, "agent")] == [agent.split("/")[1]]
    with pytest.raises(NotRestorable, match=r"cannot come back: .*demo/done"):
        action.undo(ctx, params, result.undo)
    assert not unschedulable(cluster)


def test_taint_untaint(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    other = {"key": "keep", "value": "me", "effect": "NoSchedule"}
    node_reported(cluster)
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
    assert conflict_once.retried()
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


def test_undo_of_a_cordon_whose_node_is_gone_is_not_restorable(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    # replace_node removed the node after the cordon: the undo says so instead of failing
    action, params, result = run(ctx, "cordon_node", node=NODE)
    cluster.delete("nodes", None, NODE)
    with pytest.raises(NotRestorable, match=f"node {NODE} no longer exists"):
        action.undo(ctx, params, result.undo)
