"""remove_role_binding_subject against the sandbox over HTTP: one subject of a RoleBinding or
ClusterRoleBinding removed (JSON patch with resourceVersion and a `test` of the subject; a 409
retried on fresh data), undo puts it back at its position (twice: harmless), dry run, a binding
the API server reconciles refused, a subject already gone."""

from __future__ import annotations

from typing import Any

import pytest

from kubernaut.actions import ActionContext, PreconditionFailed
from kubernaut.policy import PolicyViolation
from kubernaut.sandbox import SandboxCluster
from tests.actions.conftest import ConflictOnce, bump_annotation, policy_ctx
from tests.actions.k8s_helpers import must_get, run

SUBJECTS = [
    {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
    {"kind": "ServiceAccount", "name": "ci", "namespace": "demo"},
    {"kind": "Group", "name": "dev", "apiGroup": "rbac.authorization.k8s.io"},
]


def binding(kind: str = "RoleBinding", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "editors", "annotations": annotations or {}}
    if kind == "RoleBinding":
        meta["namespace"] = "demo"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": SUBJECTS,
    }


def subjects(
    cluster: SandboxCluster, kind: str = "rolebindings", namespace: str | None = "demo"
) -> list[Any]:
    return list(must_get(cluster, kind, namespace, "editors").get("subjects") or [])


def test_remove_subject_and_undo_at_its_position(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    cluster.apply(binding())
    sa = {
        "namespace": "demo",
        "binding": "editors",
        "subject_kind": "ServiceAccount",
        "subject_name": "ci",
        "subject_namespace": "demo",
    }

    _, _, dry = run(dry_ctx, "remove_role_binding_subject", **sa)
    assert not dry.changed and subjects(cluster) == SUBJECTS

    conflict_once.arm(bump_annotation(cluster, "rolebindings", "demo", "editors"))
    action, params, result = run(ctx, "remove_role_binding_subject", **sa)
    assert conflict_once.retried()
    assert result.undo == {"index": 1, "subject": SUBJECTS[1]} and result.changed
    assert subjects(cluster) == [SUBJECTS[0], SUBJECTS[2]]
    assert result.output["role"]["name"] == "edit"

    _, _, again = run(ctx, "remove_role_binding_subject", **sa)  # a new step: nothing to remove
    assert again.output["not_present"] and not again.changed

    assert action.undo(ctx, params, result.undo)["restored"] is True
    assert subjects(cluster) == SUBJECTS  # back at index 1
    assert action.undo(ctx, params, result.undo)["restored"] is False


def test_cluster_role_binding_and_refusals(cluster: SandboxCluster, ctx: ActionContext) -> None:
    cluster.apply(binding("ClusterRoleBinding"))
    alice = {
        "binding_kind": "ClusterRoleBinding",
        "binding": "editors",
        "subject_kind": "User",
        "subject_name": "alice",
    }
    action, params, result = run(ctx, "remove_role_binding_subject", **alice)
    assert subjects(cluster, "clusterrolebindings", None) == SUBJECTS[1:]
    action.undo(ctx, params, result.undo)
    assert subjects(cluster, "clusterrolebindings", None) == SUBJECTS

    cluster.apply(binding(annotations={"rbac.authorization.kubernetes.io/autoupdate": "true"}))
    with pytest.raises(PreconditionFailed, match="reconciled by the API server"):
        run(
            ctx,
            "remove_role_binding_subject",
            namespace="demo",
            binding="editors",
            subject_kind="Group",
            subject_name="dev",
        )
    with pytest.raises(PolicyViolation, match="namespace demo is protected"):
        run(
            policy_ctx(protected_namespaces=["demo"]),
            "remove_role_binding_subject",
            namespace="demo",
            binding="editors",
            subject_kind="Group",
            subject_name="dev",
        )
    with pytest.raises(ValueError, match="subject_namespace is required"):
        run(
            ctx,
            "remove_role_binding_subject",
            namespace="demo",
            binding="editors",
            subject_kind="ServiceAccount",
            subject_name="ci",
        )
