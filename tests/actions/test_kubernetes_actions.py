"""Each kubernetes action against the sandbox cluster over HTTP: success, not found,
dry-run (nothing changes), undo and undo twice."""

from __future__ import annotations

from typing import Any

import pytest

from kubernaut.actions import ActionContext, ActionError, NotRestorable, PreconditionFailed, registry
from kubernaut.sandbox import SandboxCluster
from kubernaut.sandbox.store import now_rfc3339
from tests.actions.conftest import ConflictOnce
from tests.actions.k8s_helpers import must_get
from tests.actions.k8s_helpers import run as run_action


def run(ctx: ActionContext, name: str, **params: Any) -> Any:
    cls = registry.get("kubernetes", name)
    action = cls()
    model = cls.Params.model_validate(params)
    return action, model, action.execute(ctx, model)


def pods_of(cluster: SandboxCluster, app: str) -> list[dict[str, Any]]:
    return cluster.list("pods", "demo", labels={"app": app})


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def wait_all_ready(cluster: SandboxCluster, app: str, count: int) -> list[dict[str, Any]]:
    cluster.wait_until(lambda: len(pods_of(cluster, app)) == count and all(map(ready, pods_of(cluster, app))))
    return pods_of(cluster, app)


def replicas(cluster: SandboxCluster, name: str) -> int:
    dep = cluster.get("deployments", "demo", name)
    assert dep is not None
    return int(dep["spec"]["replicas"])


def test_get_pod_status_reports_crashloop_and_owner(cluster: SandboxCluster, ctx: ActionContext) -> None:
    pod = wait_all_ready(cluster, "web", 3)[0]["metadata"]["name"]
    cluster.inject_fault("crashloop", namespace="demo", deployment="web")
    cluster.wait_until(lambda: not ready(cluster.get("pods", "demo", pod) or {}))
    _, _, result = run(ctx, "get_pod_status", namespace="demo", pod=pod)
    out = result.output
    assert out["exists"] is True and out["ready"] is False
    assert out["waitingReasons"] == ["CrashLoopBackOff"]
    assert out["owner"]["kind"] == "ReplicaSet" and out["deployment"] == "web"
    assert result.undo is None and not result.changed


def test_get_pod_status_names_the_oom_killed_container(cluster: SandboxCluster, ctx: ActionContext) -> None:
    pod = wait_all_ready(cluster, "api", 2)[0]
    name = pod["metadata"]["name"]
    cluster.inject_fault("oom", namespace="demo", deployment="api")
    cluster.wait_until(lambda: not ready(cluster.get("pods", "demo", name) or {}))
    _, _, result = run(ctx, "get_pod_status", namespace="demo", pod=name)
    out = result.output
    assert out["oomKilled"] == ["api"] and out["deployment"] == "api"
    [container] = out["containers"]
    assert container["lastTerminationReason"] == "OOMKilled" and container["lastExitCode"] == 137
    assert container["oomKilled"] is True and container["restartCount"] >= 1
    assert out["created"] == pod["metadata"]["creationTimestamp"] <= out["observedAt"]
    healthy = wait_all_ready(cluster, "web", 3)[0]["metadata"]["name"]
    _, _, result = run(ctx, "get_pod_status", namespace="demo", pod=healthy)
    assert result.output["oomKilled"] == [] and result.output["containers"][0]["lastExitCode"] is None


def test_get_pod_status_of_missing_pod(ctx: ActionContext) -> None:
    _, _, result = run(ctx, "get_pod_status", namespace="demo", pod="nope-12345")
    observed = result.output.pop("observedAt")
    assert result.output == {"exists": False, "name": "nope-12345", "namespace": "demo"}
    assert observed == now_rfc3339() or observed < now_rfc3339()  # the API server's Date, in seconds


def test_invalid_names_are_refused_before_any_call() -> None:
    cls = registry.get("kubernetes", "restart_pod")
    with pytest.raises(ValueError, match="not a valid Kubernetes name"):
        cls.Params.model_validate({"namespace": "demo", "pod": "{{ 7*7 }}"})
    with pytest.raises(ValueError, match="DNS-1123 label"):
        cls.Params.model_validate({"namespace": "Demo_NS", "pod": "web"})


def test_restart_pod_replaces_the_pod_and_undo_is_harmless(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    pod = wait_all_ready(cluster, "web", 3)[0]
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    action, params, result = run(ctx, "restart_pod", namespace="demo", pod=name)
    assert result.changed and result.output["deleted"] == uid
    assert (
        result.undo is not None and result.undo["uid"] == uid and result.undo["owner"]["kind"] == "ReplicaSet"
    )
    assert cluster.get("pods", "demo", name) is None
    after = wait_all_ready(cluster, "web", 3)
    assert name not in {p["metadata"]["name"] for p in after}
    # An owned pod was replaced by its controller: the deleted pod is not restorable (twice alike).
    for _ in range(2):
        with pytest.raises(NotRestorable, match="replaced it with a new pod"):
            action.undo(ctx, params, result.undo)
    assert len(pods_of(cluster, "web")) == 3


def test_restart_unowned_pod_needs_opt_in_and_undo_recreates_it(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bare", "namespace": "demo", "labels": {"app": "bare"}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        }
    )
    with pytest.raises(PreconditionFailed, match="no controller"):
        run(ctx, "restart_pod", namespace="demo", pod="bare")
    assert cluster.get("pods", "demo", "bare") is not None
    action, params, result = run(ctx, "restart_pod", namespace="demo", pod="bare", allow_unowned=True)
    assert cluster.get("pods", "demo", "bare") is None
    assert action.undo(ctx, params, result.undo)["restored"] is True
    assert must_get(cluster, "pods", "demo", "bare")["metadata"]["labels"] == {"app": "bare"}
    assert action.undo(ctx, params, result.undo)["restored"] is False  # second undo: no-op


def test_restart_pod_dry_run_changes_nothing(cluster: SandboxCluster, dry_ctx: ActionContext) -> None:
    pod = wait_all_ready(cluster, "web", 3)[0]["metadata"]["name"]
    _, _, result = run(dry_ctx, "restart_pod", namespace="demo", pod=pod)
    assert result.output["dry_run"] is True and not result.changed
    assert cluster.get("pods", "demo", pod) is not None


def test_restart_missing_pod_fails_precheck(ctx: ActionContext) -> None:
    with pytest.raises(PreconditionFailed, match="pod demo/ghost-abcde not found"):
        run(ctx, "restart_pod", namespace="demo", pod="ghost-abcde")


def test_scale_deployment_scales_waits_and_undoes(cluster: SandboxCluster, ctx: ActionContext) -> None:
    before = replicas(cluster, "api")
    action, params, result = run(
        ctx, "scale_deployment", namespace="demo", deployment="api", replicas=before + 2
    )
    assert result.undo == {"replicas": before} and result.changed
    assert replicas(cluster, "api") == before + 2
    assert len([p for p in pods_of(cluster, "api") if ready(p)]) == before + 2  # verify waited
    for _ in range(2):
        action.undo(ctx, params, result.undo)
        assert replicas(cluster, "api") == before
    wait_all_ready(cluster, "api", before)


def test_scale_deployment_dry_run_and_not_found(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext
) -> None:
    before = replicas(cluster, "api")
    _, _, result = run(dry_ctx, "scale_deployment", namespace="demo", deployment="api", replicas=7)
    assert not result.changed and replicas(cluster, "api") == before
    with pytest.raises(ActionError, match="deployment demo/missing not found"):
        run(ctx, "scale_deployment", namespace="demo", deployment="missing", replicas=1)


def test_rollout_restart_fixes_crashloop_and_undo_restores_template(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    wait_all_ready(cluster, "web", 3)
    cluster.inject_fault("crashloop", namespace="demo", deployment="web")
    cluster.wait_until(lambda: not any(map(ready, pods_of(cluster, "web"))))
    _, _, status = run(ctx, "get_deployment_status", namespace="demo", deployment="web")
    assert status.output["complete"] is False and len(status.output["crashing"]) == 3

    action, params, result = run(ctx, "rollout_restart_deployment", namespace="demo", deployment="web")
    assert result.undo == {"restartedAt": None, "generation": 1}
    _, _, status = run(ctx, "get_deployment_status", namespace="demo", deployment="web")
    assert status.output["complete"] is True and status.output["crashing"] == []
    dep = must_get(cluster, "deployments", "demo", "web")
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"

    first = action.undo(ctx, params, result.undo)
    assert first["restored"] is True
    annotations = (
        must_get(cluster, "deployments", "demo", "web")["spec"]["template"]["metadata"].get("annotations")
        or {}
    )
    assert "kubectl.kubernetes.io/restartedAt" not in annotations
    assert action.undo(ctx, params, result.undo)["restored"] is False


def test_get_pod_logs_returns_text_lines(cluster: SandboxCluster, ctx: ActionContext) -> None:
    pod = wait_all_ready(cluster, "web", 3)[0]["metadata"]["name"]
    _, _, result = run(ctx, "get_pod_logs", namespace="demo", pod=pod, tail_lines=2)
    expected = cluster.logs("demo", pod, "web").splitlines()[-2:]
    assert result.output == {"lines": expected, "count": 2}
    assert not any(line.startswith("b'") for line in result.output["lines"])


# --- increase_resources: requests above limits are refused before the API is called ---


def test_increase_resources_refuses_requests_above_limits_before_calling(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    before = must_get(cluster, "deployments", "demo", "api")["spec"]["template"]["spec"]["containers"][0]
    for context in (ctx, dry_ctx):
        with pytest.raises(
            PreconditionFailed,
            match=r"deployment demo/api container 'api': requests.memory 512Mi would exceed "
            r"limits.memory 256Mi, which the API server refuses; raise limits.memory to at least 512Mi",
        ):
            run_action(
                context,
                "increase_resources",
                namespace="demo",
                name="api",
                container="api",
                requests={"memory": "512Mi"},
            )
    assert conflict_once.writes == []  # nothing was sent: no 422 to interpret afterwards
    after = must_get(cluster, "deployments", "demo", "api")["spec"]["template"]["spec"]["containers"][0]
    assert after["resources"] == before["resources"]
    # The same request together with a limit that covers it is made.
    _, _, result = run_action(
        ctx,
        "increase_resources",
        namespace="demo",
        name="api",
        container="api",
        requests={"memory": "512Mi"},
        limits={"memory": "512Mi"},
    )
    assert result.output["resources"] == {
        "requests": {"cpu": "50m", "memory": "512Mi"},
        "limits": {"memory": "512Mi"},
    }
    assert [method for method, _ in conflict_once.writes] == ["PATCH"]
