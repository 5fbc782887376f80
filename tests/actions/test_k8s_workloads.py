"""Workload actions against the sandbox over HTTP: success, not found, conflict retried,
dry-run changes nothing, undo (twice), and a retried step (``prior_undo``) changes nothing twice."""

from __future__ import annotations

from typing import Any

import pytest

from kubernaut.actions import ActionContext, ActionError, NotRestorable, PreconditionFailed, registry
from kubernaut.sandbox import SandboxCluster
from tests.actions.conftest import ConflictOnce, bump_annotation
from tests.actions.k8s_helpers import must_get, pods_of, ready, retry_ctx, run, wait_all_ready, workload


def containers(cluster: SandboxCluster, kind: str, name: str) -> dict[str, Any]:
    obj = must_get(cluster, kind, "demo", name)
    return {c["name"]: c.get("resources", {}) for c in obj["spec"]["template"]["spec"]["containers"]}


# --- delete_pod ---


def test_delete_pod_deletes_bare_pod_undo_recreates(cluster: SandboxCluster, ctx: ActionContext) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bare", "namespace": "demo", "labels": {"app": "bare"}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        }
    )
    action, params, result = run(ctx, "delete_pod", namespace="demo", pod="bare")
    assert result.changed and cluster.get("pods", "demo", "bare") is None
    assert action.undo(ctx, params, result.undo)["restored"] is True
    assert cluster.get("pods", "demo", "bare") is not None
    assert action.undo(ctx, params, result.undo)["restored"] is False
    # A retried step after the pod was deleted and recreated must not delete the successor.
    _, _, again = run(retry_ctx(ctx, result.undo), "delete_pod", namespace="demo", pod="bare")
    assert again.output["already_done"] is True and cluster.get("pods", "demo", "bare") is not None


def bare(name: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "demo", "labels": {"app": name}},
        "spec": {"containers": [{"name": "main", "image": "busybox", **container}]},
    }


def test_delete_pod_undo_schedules_the_recreated_pod_afresh(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    """The recorded manifest carries the node the pod ran on; the recreated pod must not be pinned
    there (that node may be the one being drained): the scheduler places it again."""
    cluster.apply(bare("pinned"))
    old = cluster.wait_until(
        lambda: (p := cluster.get("pods", "demo", "pinned")) and p["spec"].get("nodeName") and p
    )
    node = old["spec"]["nodeName"]
    action, params, result = run(ctx, "delete_pod", namespace="demo", pod="pinned")
    assert result.undo["pod"]["spec"]["nodeName"] == node  # recorded as it was
    run(ctx, "cordon_node", node=node)
    assert action.undo(ctx, params, result.undo) == {"restored": True, "pod": "demo/pinned"}
    new = cluster.wait_until(
        lambda: (p := cluster.get("pods", "demo", "pinned")) and p["spec"].get("nodeName") and p
    )
    assert new["spec"]["nodeName"] != node and new["metadata"]["uid"] != old["metadata"]["uid"]
    assert "deletionTimestamp" not in new["metadata"] and new["metadata"]["labels"] == {"app": "pinned"}


def test_delete_pod_undo_waits_while_the_pod_terminates(cluster: SandboxCluster, ctx: ActionContext) -> None:
    cluster.apply(bare("slow", lifecycle={"preStop": {"sleep": {"seconds": 1}}}))
    cluster.wait_until(lambda: (p := cluster.get("pods", "demo", "slow")) and ready(p))
    cls = registry.get("kubernetes", "delete_pod")
    action, params = cls(), cls.Params.model_validate({"namespace": "demo", "pod": "slow"})
    result = action.run(ctx, params)  # deleted, not yet waited for: Terminating
    terminating = must_get(cluster, "pods", "demo", "slow")
    assert terminating["metadata"]["deletionTimestamp"]
    # Its name is taken until its kubelet has stopped it: the undo waits, then recreates it.
    assert action.undo(ctx, params, result.undo) == {"restored": True, "pod": "demo/slow"}
    again = must_get(cluster, "pods", "demo", "slow")
    assert again["metadata"]["uid"] != terminating["metadata"]["uid"]


def test_delete_owned_pod_undo_is_not_restorable(cluster: SandboxCluster, ctx: ActionContext) -> None:
    pod = wait_all_ready(cluster, "web", 3)[0]["metadata"]["name"]
    action, params, result = run(ctx, "delete_pod", namespace="demo", pod=pod)
    for _ in range(2):
        with pytest.raises(
            NotRestorable, match=rf"pod demo/{pod} was deleted and its ReplicaSet web-\w+ replaced"
        ):
            action.undo(ctx, params, result.undo)
    wait_all_ready(cluster, "web", 3)


def test_delete_pod_dry_run_and_missing(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext
) -> None:
    pod = wait_all_ready(cluster, "web", 3)[0]["metadata"]["name"]
    _, _, result = run(dry_ctx, "delete_pod", namespace="demo", pod=pod)
    assert not result.changed and cluster.get("pods", "demo", pod) is not None
    with pytest.raises(PreconditionFailed, match="not found"):
        run(ctx, "delete_pod", namespace="demo", pod="ghost")


# --- scale_statefulset ---


def test_scale_statefulset(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    cluster.apply(workload("StatefulSet", "db", replicas=1))
    wait_all_ready(cluster, "db", 1)
    _, _, dry = run(dry_ctx, "scale_statefulset", namespace="demo", statefulset="db", replicas=3)
    assert not dry.changed and must_get(cluster, "statefulsets", "demo", "db")["spec"]["replicas"] == 1

    conflict_once.arm(bump_annotation(cluster, "statefulsets", "demo", "db"))
    action, params, result = run(ctx, "scale_statefulset", namespace="demo", statefulset="db", replicas=3)
    assert result.undo == {"replicas": 1} and result.changed
    assert conflict_once.retried()  # the first write hit the 409 and was retried
    assert len([p for p in pods_of(cluster, "db") if p["status"].get("phase") == "Running"]) == 3
    for _ in range(2):
        action.undo(ctx, params, result.undo)
        assert must_get(cluster, "statefulsets", "demo", "db")["spec"]["replicas"] == 1
    # A retry of the interrupted step keeps the first record (replicas 1), not the scaled count.
    _, _, again = run(
        retry_ctx(ctx, {"replicas": 1}), "scale_statefulset", namespace="demo", statefulset="db", replicas=3
    )
    assert again.undo == {"replicas": 1}
    with pytest.raises(ActionError, match="statefulset demo/nope not found"):
        run(ctx, "scale_statefulset", namespace="demo", statefulset="nope", replicas=1)


# --- restart_daemonset ---


def test_restart_daemonset(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    cluster.apply(workload("DaemonSet", "agent"))
    old = {p["metadata"]["uid"] for p in wait_all_ready(cluster, "agent", 2)}
    _, _, dry = run(dry_ctx, "restart_daemonset", namespace="demo", daemonset="agent")
    assert not dry.changed and {p["metadata"]["uid"] for p in pods_of(cluster, "agent")} == old

    conflict_once.arm(bump_annotation(cluster, "daemonsets", "demo", "agent"))
    action, params, result = run(ctx, "restart_daemonset", namespace="demo", daemonset="agent")
    assert result.undo == {"restartedAt": None}
    assert conflict_once.retried()
    new = {p["metadata"]["uid"] for p in wait_all_ready(cluster, "agent", 2)}
    assert not new & old  # every pod was replaced
    stamped = must_get(cluster, "daemonsets", "demo", "agent")["spec"]["template"]["metadata"]["annotations"]
    # A retried step sees the stamp differs from the record: no second restart.
    _, _, again = run(retry_ctx(ctx, result.undo), "restart_daemonset", namespace="demo", daemonset="agent")
    assert again.output["already_done"] is True
    assert (
        must_get(cluster, "daemonsets", "demo", "agent")["spec"]["template"]["metadata"]["annotations"]
        == stamped
    )
    assert action.undo(ctx, params, result.undo)["restored"] is True
    tmpl = must_get(cluster, "daemonsets", "demo", "agent")["spec"]["template"]["metadata"]
    assert "kubectl.kubernetes.io/restartedAt" not in (tmpl.get("annotations") or {})
    assert action.undo(ctx, params, result.undo)["restored"] is False
    with pytest.raises(ActionError, match="daemonset demo/nope not found"):
        run(ctx, "restart_daemonset", namespace="demo", daemonset="nope")


# --- rollback_deployment ---


def _set_image(cluster: SandboxCluster, image: str) -> None:
    dep = must_get(cluster, "deployments", "demo", "web")
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = image
    cluster.apply(dep)


def _image(cluster: SandboxCluster) -> str:
    return str(
        must_get(cluster, "deployments", "demo", "web")["spec"]["template"]["spec"]["containers"][0]["image"]
    )


def test_rollback_deployment(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    wait_all_ready(cluster, "web", 3)
    with pytest.raises(PreconditionFailed, match="no revision"):
        run(ctx, "rollback_deployment", namespace="demo", deployment="web")
    _set_image(cluster, "nginx:broken")
    cluster.wait_until(
        lambda: (
            must_get(cluster, "deployments", "demo", "web")["metadata"]["annotations"].get(
                "deployment.kubernetes.io/revision"
            )
            == "2"
        )
    )
    # Let the rollout settle: the controller's own status writes would add conflicts below.
    cluster.wait_until(
        lambda: all(
            p["spec"]["containers"][0]["image"] == "nginx:broken" for p in wait_all_ready(cluster, "web", 3)
        )
    )
    _, _, dry = run(dry_ctx, "rollback_deployment", namespace="demo", deployment="web")
    assert not dry.changed and _image(cluster) == "nginx:broken"

    conflict_once.arm(bump_annotation(cluster, "deployments", "demo", "web"))
    action, params, result = run(ctx, "rollback_deployment", namespace="demo", deployment="web")
    assert conflict_once.retried()
    assert result.output["revision"] == 2 and result.output["to_revision"] == 1
    assert _image(cluster) == "nginx:1.27"
    labels = must_get(cluster, "deployments", "demo", "web")["spec"]["template"]["metadata"]["labels"]
    assert "pod-template-hash" not in labels
    assert all(p["spec"]["containers"][0]["image"] == "nginx:1.27" for p in wait_all_ready(cluster, "web", 3))
    # Retried after the interruption: the template already differs from the record, no second rollback.
    _, _, again = run(retry_ctx(ctx, result.undo), "rollback_deployment", namespace="demo", deployment="web")
    assert again.output["already_done"] is True and _image(cluster) == "nginx:1.27"
    assert action.undo(ctx, params, result.undo)["restored"] is True
    assert _image(cluster) == "nginx:broken"
    assert action.undo(ctx, params, result.undo)["restored"] is False
    with pytest.raises(ActionError, match="deployment demo/nope not found"):
        run(ctx, "rollback_deployment", namespace="demo", deployment="nope")


# --- increase_resources ---


def test_increase_resources_by_factor_fixes_oom(
    cluster: SandboxCluster, ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    wait_all_ready(cluster, "api", 2)
    cluster.inject_fault("oom", namespace="demo", deployment="api")
    cluster.wait_until(lambda: not any(map(ready, pods_of(cluster, "api"))))
    conflict_once.arm(bump_annotation(cluster, "deployments", "demo", "api"))
    action, params, result = run(
        ctx,
        "increase_resources",
        namespace="demo",
        name="api",
        container="api",
        factor=2,
        resources=["memory"],
    )
    assert conflict_once.retried()
    assert result.undo == {
        "container": "api",
        "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}},
    }
    assert containers(cluster, "deployments", "api")["api"] == {
        "requests": {"cpu": "50m", "memory": "512Mi"},
        "limits": {"memory": "512Mi"},
    }
    wait_all_ready(cluster, "api", 2)
    _, _, again = run(
        retry_ctx(ctx, result.undo),
        "increase_resources",
        namespace="demo",
        name="api",
        container="api",
        factor=2,
        resources=["memory"],
    )
    assert again.output["already_done"] is True
    assert containers(cluster, "deployments", "api")["api"]["limits"] == {"memory": "512Mi"}  # not 1Gi
    assert action.undo(ctx, params, result.undo)["restored"] is True
    assert containers(cluster, "deployments", "api")["api"]["limits"] == {"memory": "256Mi"}
    assert action.undo(ctx, params, result.undo)["restored"] is False


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_increase_resources_absolute_keeps_other_containers(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, kind: str
) -> None:
    cluster.apply(workload(kind, "work", replicas=1))
    plural = kind.lower() + "s"
    before = containers(cluster, plural, "work")
    _, _, dry = run(
        dry_ctx,
        "increase_resources",
        namespace="demo",
        kind=kind,
        name="work",
        container="main",
        limits={"memory": "256Mi", "cpu": "500m"},
    )
    assert not dry.changed and containers(cluster, plural, "work") == before
    _, _, result = run(
        ctx,
        "increase_resources",
        namespace="demo",
        kind=kind,
        name="work",
        container="main",
        limits={"memory": "256Mi", "cpu": "500m"},
    )
    after = containers(cluster, plural, "work")
    assert after["sidecar"] == before["sidecar"]
    assert after["main"] == {
        "requests": before["main"]["requests"],
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    assert result.output["factor"] == 2.5


def test_increase_resources_refusals(cluster: SandboxCluster, ctx: ActionContext) -> None:
    with pytest.raises(PreconditionFailed, match="only increases"):
        run(
            ctx, "increase_resources", namespace="demo", name="api", container="api", limits={"memory": "1Mi"}
        )
    with pytest.raises(PreconditionFailed, match="no container 'nope'"):
        run(ctx, "increase_resources", namespace="demo", name="api", container="nope", factor=2)
    with pytest.raises(ActionError, match="deployment demo/ghost not found"):
        run(ctx, "increase_resources", namespace="demo", name="ghost", container="x", factor=1.5)
    with pytest.raises(ValueError, match="either factor or absolute"):
        run(ctx, "increase_resources", namespace="demo", name="api", container="api")


# --- update_hpa ---


def _hpa(cluster: SandboxCluster) -> dict[str, Any]:
    return cluster.apply(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 5,
            },
        }
    )


def test_update_hpa(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    _hpa(cluster)

    def bounds() -> tuple[int, int]:
        spec = must_get(cluster, "horizontalpodautoscalers", "demo", "web")["spec"]
        return spec["minReplicas"], spec["maxReplicas"]

    _, _, dry = run(dry_ctx, "update_hpa", namespace="demo", hpa="web", max_replicas=10)
    assert not dry.changed and bounds() == (2, 5)
    conflict_once.arm(bump_annotation(cluster, "horizontalpodautoscalers", "demo", "web"))
    action, params, result = run(
        ctx, "update_hpa", namespace="demo", hpa="web", max_replicas=10, min_replicas=3
    )
    assert conflict_once.retried() and bounds() == (3, 10)
    assert result.undo == {"minReplicas": 2, "maxReplicas": 5}
    _, _, again = run(
        retry_ctx(ctx, result.undo),
        "update_hpa",
        namespace="demo",
        hpa="web",
        max_replicas=10,
        min_replicas=3,
    )
    assert not again.changed and again.undo == result.undo and bounds() == (3, 10)
    assert action.undo(ctx, params, result.undo)["restored"] is True and bounds() == (2, 5)
    assert action.undo(ctx, params, result.undo)["restored"] is False
    with pytest.raises(PreconditionFailed, match="would exceed maxReplicas"):
        run(ctx, "update_hpa", namespace="demo", hpa="web", min_replicas=7)
    with pytest.raises(ActionError, match="horizontalpodautoscaler demo/nope not found"):
        run(ctx, "update_hpa", namespace="demo", hpa="nope", max_replicas=3)
