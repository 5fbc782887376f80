"""Monitoring actions wait for health, bounded by their own wait_timeout."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kubernaut.actions import ActionContext, VerificationFailed, registry
from kubernaut.sandbox import SandboxCluster
from tests.actions.test_kubernetes_actions import pods_of, ready, wait_all_ready


def run(ctx: ActionContext, name: str, **params: Any) -> Any:
    cls = registry.get("monitoring", name)
    return cls().execute(ctx, cls.Params.model_validate(params))


def test_validate_pod_health_accepts_a_ready_replacement(cluster: SandboxCluster, ctx: ActionContext) -> None:
    pod = wait_all_ready(cluster, "web", 3)[0]["metadata"]["name"]
    cluster.delete("pods", "demo", pod)
    result = run(ctx, "validate_pod_health", namespace="demo", pod=pod, wait_timeout="10s")
    assert result.output["healthy"] is True and result.output["replacement"] is True
    assert result.output["pod"]["name"] != pod and result.output["pod"]["ready"] is True


def test_validate_pod_health_times_out_on_crashloop(cluster: SandboxCluster, ctx: ActionContext) -> None:
    pod = wait_all_ready(cluster, "web", 3)[0]["metadata"]["name"]
    cluster.inject_fault("crashloop", namespace="demo", deployment="web")
    cluster.wait_until(lambda: not any(map(ready, pods_of(cluster, "web"))))
    started = time.monotonic()
    with pytest.raises(VerificationFailed, match="not reached within 1s"):
        run(ctx, "validate_pod_health", namespace="demo", pod=pod, wait_timeout="1s")
    assert time.monotonic() - started < 5


def test_validate_deployment_ready(cluster: SandboxCluster, ctx: ActionContext) -> None:
    wait_all_ready(cluster, "api", 2)
    result = run(ctx, "validate_deployment_ready", namespace="demo", deployment="api", wait_timeout="5s")
    assert result.output["complete"] is True and result.output["readyPods"] == 2
    cluster.inject_fault("crashloop", namespace="demo", deployment="api")
    cluster.wait_until(lambda: not any(map(ready, pods_of(cluster, "api"))))
    with pytest.raises(VerificationFailed, match="rollout of deployment demo/api"):
        run(ctx, "validate_deployment_ready", namespace="demo", deployment="api", wait_timeout="1s")
