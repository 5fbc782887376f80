"""update_resource_quota against the sandbox over HTTP: a deployment held back by its
namespace's quota (pod creates refused with 403) rolls out once the hard limit is raised;
dry run, undo (twice), a retried step, refusals (lowering, adding, beyond the policy's factor)."""

from __future__ import annotations

from typing import Any

import pytest

from kubernaut.actions import ActionContext, PreconditionFailed
from kubernaut.policy import PolicyViolation
from kubernaut.sandbox import SandboxCluster
from tests.actions.conftest import ConflictOnce, bump_annotation, policy_ctx
from tests.actions.k8s_helpers import must_get, pods_of, run, wait_all_ready


@pytest.fixture
def ctx(cluster: SandboxCluster) -> ActionContext:
    """As the shared one, with more time: a step's timeout runs from here, and these tests
    settle workloads first (slow on a loaded machine)."""
    import logging

    from kubernaut.config import KubernautConfig

    return ActionContext(
        timeout=90, poll_interval=0.1, logger=logging.getLogger("test"), _config=KubernautConfig()
    )


def quota(hard: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "compute", "namespace": "demo"},
        "spec": {"hard": hard},
    }


def used(cluster: SandboxCluster) -> dict[str, str]:
    return dict(
        (must_get(cluster, "resourcequotas", "demo", "compute").get("status") or {}).get("used") or {}
    )


def failed_creates(cluster: SandboxCluster) -> list[str]:
    return [e["message"] for e in cluster.list("events", "demo") if e["reason"] == "FailedCreate"]


def test_raising_the_quota_lets_the_rollout_finish(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    wait_all_ready(cluster, "web", 3)
    wait_all_ready(cluster, "api", 2)
    cluster.apply(quota({"pods": "6", "requests.memory": "2Gi"}))
    cluster.wait_until(lambda: used(cluster).get("pods") == "5")
    web = must_get(cluster, "deployments", "demo", "web")
    web["spec"]["replicas"] = 5
    cluster.apply(web)
    cluster.wait_until(lambda: failed_creates(cluster))
    assert len(pods_of(cluster, "web")) == 4  # the quota holds the fifth back
    assert (
        "is forbidden: exceeded quota: compute, requested: pods=1, used: pods=6, limited: pods=6"
        in failed_creates(cluster)[0]
    )

    _, _, dry = run(dry_ctx, "update_resource_quota", namespace="demo", quota="compute", hard={"pods": "10"})
    assert (
        not dry.changed
        and must_get(cluster, "resourcequotas", "demo", "compute")["spec"]["hard"]["pods"] == "6"
    )

    conflict_once.arm(bump_annotation(cluster, "resourcequotas", "demo", "compute"))
    action, params, result = run(
        ctx, "update_resource_quota", namespace="demo", quota="compute", hard={"pods": "10"}
    )
    assert conflict_once.retried()  # the first write hit the 409 and was retried
    assert result.undo == {"hard": {"pods": "6"}} and result.changed
    assert (
        result.output["hard"] == {"pods": "10", "requests.memory": "2Gi"} and result.output["factor"] == 1.667
    )
    wait_all_ready(cluster, "web", 5)
    cluster.wait_until(lambda: used(cluster).get("pods") == "7")
    status = must_get(cluster, "resourcequotas", "demo", "compute")["status"]
    assert status["hard"] == {"pods": "10", "requests.memory": "2Gi"}

    # A retried step sees the limits differ from its record: nothing written twice.
    from tests.actions.k8s_helpers import retry_ctx

    _, _, again = run(
        retry_ctx(ctx, result.undo),
        "update_resource_quota",
        namespace="demo",
        quota="compute",
        hard={"pods": "12"},
    )
    assert again.output["already_done"] is True
    assert must_get(cluster, "resourcequotas", "demo", "compute")["spec"]["hard"]["pods"] == "10"

    assert action.undo(ctx, params, result.undo) == {"restored": True, "hard": {"pods": "6"}}
    assert must_get(cluster, "resourcequotas", "demo", "compute")["spec"]["hard"] == {
        "pods": "6",
        "requests.memory": "2Gi",
    }
    assert action.undo(ctx, params, result.undo)["restored"] is False


def test_quota_factor_and_refusals(cluster: SandboxCluster, ctx: ActionContext) -> None:
    cluster.apply(quota({"pods": "10", "requests.memory": "2Gi", "count/configmaps": "5"}))
    _, _, result = run(
        ctx,
        "update_resource_quota",
        namespace="demo",
        quota="compute",
        factor=1.5,
        resources=["requests.memory"],
    )
    assert result.output["hard"]["requests.memory"] == "3072Mi" and result.undo == {
        "hard": {"requests.memory": "2Gi"}
    }
    with pytest.raises(
        PreconditionFailed, match=r"hard.pods 5 is below the current 10: this action only raises"
    ):
        run(ctx, "update_resource_quota", namespace="demo", quota="compute", hard={"pods": "5"})
    with pytest.raises(PreconditionFailed, match=r"has no hard limit for limits\.cpu"):
        run(ctx, "update_resource_quota", namespace="demo", quota="compute", hard={"limits.cpu": "4"})
    with pytest.raises(PolicyViolation, match=r"factor 8 exceeds the limit of 4"):
        run(
            policy_ctx(),
            "update_resource_quota",
            namespace="demo",
            quota="compute",
            hard={"count/configmaps": "40"},
        )
    with pytest.raises(PolicyViolation, match=r"factor 2 exceeds the limit of 1.5"):
        run(
            policy_ctx(max_resource_factor=1.5),
            "update_resource_quota",
            namespace="demo",
            quota="compute",
            factor=2,
        )
    with pytest.raises(PolicyViolation, match="namespace kube-system is protected"):
        run(policy_ctx(), "update_resource_quota", namespace="kube-system", quota="compute", factor=2)
    # require_label reads the quota's labels like any other target's.
    with pytest.raises(
        PolicyViolation, match=r"only objects labelled kubernaut\.io/managed=true may be changed"
    ):
        run(
            policy_ctx(require_label="kubernaut.io/managed=true"),
            "update_resource_quota",
            namespace="demo",
            quota="compute",
            factor=2,
        )
    assert must_get(cluster, "resourcequotas", "demo", "compute")["spec"]["hard"]["pods"] == "10"
