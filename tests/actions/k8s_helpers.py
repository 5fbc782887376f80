"""Shared helpers of the kubernetes action tests."""

from __future__ import annotations

from typing import Any

from kubernaut.actions import ActionContext, ActionResult, registry
from kubernaut.sandbox import SandboxCluster


def run(ctx: ActionContext, action_name: str, /, **params: Any) -> tuple[Any, Any, ActionResult]:
    cls = registry.get("kubernetes", action_name)
    action = cls()
    model = cls.Params.model_validate(params)
    if not isinstance(ctx, RetryContext):
        ctx.prior_undo = None  # every call is a new step: no journal record from an earlier one
    return action, model, action.execute(ctx, model)


class RetryContext(ActionContext):
    pass


def retry_ctx(ctx: ActionContext, record: dict[str, Any] | None) -> ActionContext:
    """The same step run again after an interruption: the journal holds the earlier record."""
    return RetryContext(
        timeout=ctx.timeout,
        poll_interval=ctx.poll_interval,
        logger=ctx.logger,
        prior_undo=record,
        _config=ctx.config,
    )


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def pods_of(cluster: SandboxCluster, app: str, namespace: str = "demo") -> list[dict[str, Any]]:
    return cluster.list("pods", namespace, labels={"app": app})


def wait_all_ready(cluster: SandboxCluster, app: str, count: int) -> list[dict[str, Any]]:
    cluster.wait_until(lambda: len(pods_of(cluster, app)) == count and all(map(ready, pods_of(cluster, app))))
    return pods_of(cluster, app)


def must_get(cluster: SandboxCluster, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
    obj = cluster.get(kind, namespace, name)
    assert obj is not None, f"{kind} {namespace}/{name} missing"
    return obj


def workload(kind: str, name: str, replicas: int = 2, namespace: str = "demo") -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "containers": [
                    {"name": "sidecar", "image": "busybox", "resources": {"requests": {"cpu": "10m"}}},
                    {
                        "name": "main",
                        "image": "nginx:1.27",
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "64Mi"},
                            "limits": {"cpu": "200m", "memory": "128Mi"},
                        },
                    },
                ]
            },
        },
    }
    if kind != "DaemonSet":
        spec["replicas"] = replicas
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
