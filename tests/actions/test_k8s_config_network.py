"""ConfigMap, Secret and quarantine actions against the sandbox."""

from __future__ import annotations

import base64
import logging

import pytest

from kubernaut.actions import ActionContext, ActionError
from kubernaut.sandbox import SandboxCluster
from tests.actions.conftest import ConflictOnce, bump_annotation
from tests.actions.k8s_helpers import must_get, pods_of, retry_ctx, run, wait_all_ready


def data(cluster: SandboxCluster, kind: str, name: str) -> dict[str, str]:
    return dict(must_get(cluster, kind, "demo", name).get("data") or {})


def test_update_configmap(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    before = data(cluster, "configmaps", "web-config")
    _, _, dry = run(
        dry_ctx, "update_configmap", namespace="demo", configmap="web-config", set={"LOG_LEVEL": "debug"}
    )
    assert not dry.changed and data(cluster, "configmaps", "web-config") == before
    conflict_once.arm(bump_annotation(cluster, "configmaps", "demo", "web-config"))
    action, params, result = run(
        ctx,
        "update_configmap",
        namespace="demo",
        configmap="web-config",
        set={"LOG_LEVEL": "debug", "NEW": "1"},
        remove=["UPSTREAM"],
    )
    assert conflict_once.retried()
    assert data(cluster, "configmaps", "web-config") == {"LOG_LEVEL": "debug", "NEW": "1"}
    assert result.undo == {"data": before}
    _, _, again = run(
        retry_ctx(ctx, result.undo),
        "update_configmap",
        namespace="demo",
        configmap="web-config",
        set={"LOG_LEVEL": "debug", "NEW": "1"},
        remove=["UPSTREAM"],
    )
    assert again.undo == {"data": before} and not again.changed
    assert action.undo(ctx, params, result.undo)["restored"] is True
    assert data(cluster, "configmaps", "web-config") == before
    assert action.undo(ctx, params, result.undo)["restored"] is False
    with pytest.raises(ActionError, match="configmap demo/nope not found"):
        run(ctx, "update_configmap", namespace="demo", configmap="nope", set={"a": "b"})


def test_rotate_secret_restarts_consumers_and_never_logs_values(
    cluster: SandboxCluster,
    ctx: ActionContext,
    dry_ctx: ActionContext,
    conflict_once: ConflictOnce,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = {"password": base64.b64encode(b"old-pass").decode()}
    cluster.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "demo"}, "data": old}
    )
    old_pods = {p["metadata"]["uid"] for p in wait_all_ready(cluster, "api", 2)}
    params_in = {
        "namespace": "demo",
        "secret": "db",
        "data": {"password": "s3cret-NEW"},
        "consumers": [{"kind": "Deployment", "name": "api"}],
    }
    _, _, dry = run(dry_ctx, "rotate_secret", **params_in)
    assert not dry.changed and data(cluster, "secrets", "db") == old
    caplog.set_level(logging.DEBUG)
    conflict_once.arm(bump_annotation(cluster, "secrets", "demo", "db"))
    action, params, result = run(ctx, "rotate_secret", **params_in)
    assert data(cluster, "secrets", "db") == {"password": base64.b64encode(b"s3cret-NEW").decode()}
    assert result.undo is not None
    assert result.undo["data"] == old and result.undo["restarted"] == {"Deployment/api": None}
    assert "s3cret-NEW" not in repr(result.output) + repr(params) + caplog.text
    assert len(result.output["sha256"]) == 16
    new_pods = {p["metadata"]["uid"] for p in wait_all_ready(cluster, "api", 2)}
    assert not new_pods & old_pods
    stamp = must_get(cluster, "deployments", "demo", "api")["spec"]["template"]["metadata"]["annotations"]
    _, _, again = run(retry_ctx(ctx, result.undo), "rotate_secret", **params_in)  # interrupted + retried
    assert (
        must_get(cluster, "deployments", "demo", "api")["spec"]["template"]["metadata"]["annotations"]
        == stamp
    )
    assert again.undo is not None and again.undo["data"] == old
    assert action.undo(ctx, params, result.undo)["restored"] is True
    assert data(cluster, "secrets", "db") == old
    assert action.undo(ctx, params, result.undo) == {"restored": False, "restarted": {}}
    with pytest.raises(ActionError, match="secret demo/nope not found"):
        run(ctx, "rotate_secret", namespace="demo", secret="nope", data={"a": "b"})


def test_quarantine_pod(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    pod = wait_all_ready(cluster, "web", 3)[0]
    name, labels = pod["metadata"]["name"], pod["metadata"]["labels"]
    _, _, dry = run(dry_ctx, "quarantine_pod", namespace="demo", pod=name)
    assert not dry.changed and must_get(cluster, "pods", "demo", name)["metadata"]["labels"] == labels
    assert cluster.list("networkpolicies", "demo") == []
    conflict_once.arm(bump_annotation(cluster, "pods", "demo", name))
    action, params, result = run(ctx, "quarantine_pod", namespace="demo", pod=name)
    assert conflict_once.retried()
    assert result.output["services"] == ["web"]
    now = must_get(cluster, "pods", "demo", name)["metadata"]["labels"]
    assert "app" not in now and now["kubernaut.io/quarantined"] == "true"
    policy = must_get(cluster, "networkpolicies", "demo", result.output["policy"])
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "kubernaut.io/quarantine-id": pod["metadata"]["uid"]
    }
    # The pod is kept for debugging. (A real ReplicaSet releases it and starts a replacement;
    # the sandbox keeps counting it by ownerReference, so no replacement is awaited here.)
    assert cluster.get("pods", "demo", name) is not None
    _, _, again = run(retry_ctx(ctx, result.undo), "quarantine_pod", namespace="demo", pod=name)
    assert again.undo == result.undo and len(cluster.list("networkpolicies", "demo")) == 1
    assert action.undo(ctx, params, result.undo)["restored"] is True
    restored = (
        must_get(cluster, "pods", "demo", name)["metadata"]["labels"]
        if cluster.get("pods", "demo", name)
        else labels
    )
    assert restored.get("app") == "web" and "kubernaut.io/quarantined" not in restored
    assert cluster.list("networkpolicies", "demo") == []
    assert action.undo(ctx, params, result.undo)["restored"] is False
    assert len(pods_of(cluster, "web")) >= 3
    with pytest.raises(ActionError, match="pod demo/ghost not found"):
        run(ctx, "quarantine_pod", namespace="demo", pod="ghost")
