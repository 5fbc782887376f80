"""Draining a node whose kubelet is unreachable: its pods stay Terminating (nothing finishes
them, as in a real cluster), and drain_node counts them gone once their deletionTimestamp is
older than skip_wait_for_delete_timeout (kubectl drain --skip-wait-for-delete-timeout)."""

from __future__ import annotations

import pytest

from kubernaut.actions import ActionContext, VerificationFailed
from kubernaut.sandbox import SandboxCluster
from kubernaut.simulate.engine import node_not_ready
from tests.actions.k8s_helpers import ready, run
from tests.actions.test_k8s_nodes import NODE, on_node, pinned


def test_drain_of_an_unreachable_node_skips_pods_its_kubelet_cannot_finish(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    cluster.apply(pinned("edge", replicas=2, terminationGracePeriodSeconds=1))
    cluster.wait_until(lambda: len([p for p in on_node(cluster, "edge") if ready(p)]) == 2)
    uids = {p["metadata"]["uid"] for p in on_node(cluster, "edge")}
    node_not_ready(cluster, NODE)

    # kubectl's default (0): wait for the pods to be deleted, which never happens on this node
    # (the demo pods there too are evicted with a 1 s grace period).
    short = ActionContext(timeout=4, poll_interval=0.1, logger=ctx.logger, _config=ctx.config)
    with pytest.raises(VerificationFailed, match=rf"drain of node {NODE} .*demo/edge-"):
        run(short, "drain_node", node=NODE, skip_wait_for_delete_timeout=0, grace_period_seconds=1)
    # Past their 1 s grace period and more: still there, Terminating (the kubelet is unreachable).
    left = [p for p in on_node(cluster, "edge") if p["metadata"]["uid"] in uids]
    assert len(left) == 2 and all(p["metadata"].get("deletionTimestamp") for p in left)

    # The default (1 s past the deletionTimestamp, i.e. eviction + grace + 1 s): the drain ends.
    fresh = ActionContext(timeout=30, poll_interval=0.1, logger=ctx.logger, _config=ctx.config)
    _, _, result = run(fresh, "drain_node", node=NODE, grace_period_seconds=1)
    assert {f"demo/{p['metadata']['name']}" for p in left} <= set(result.output["terminating"])
    assert (
        len([p for p in on_node(cluster, "edge") if p["metadata"]["uid"] in uids]) == 2
    )  # still Terminating
