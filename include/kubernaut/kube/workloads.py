"""Deployments, StatefulSets and DaemonSets handled alike: read, restart, wait until rolled out."""

from __future__ import annotations

import datetime
from typing import Any, Literal

from kubernaut.kube.clients import MERGE_PATCH, KubeAccess, apps, core, dry
from kubernaut.kube.errors import api_errors
from kubernaut.kube.objects import patch_object, read_object
from kubernaut.kube.pods import selector_string
from kubernaut.kube.rollout import judge_workload, rollout_status, selector_of

WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet"]
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def template_annotation(obj: dict[str, Any], key: str) -> str | None:
    annotations = ((obj["spec"].get("template") or {}).get("metadata") or {}).get("annotations") or {}
    value = annotations.get(key)
    return str(value) if value is not None else None


def workload_status(ctx: KubeAccess, kind: WorkloadKind, namespace: str, name: str) -> dict[str, Any]:
    """Desired/updated/ready counts and whether the rollout is complete, per kind."""
    if kind == "Deployment":
        with api_errors(f"deployment {namespace}/{name}"):
            dep = apps(ctx).read_namespaced_deployment(name, namespace)
        return rollout_status(core(ctx), dep)
    obj = read_object(ctx.api_client, kind, namespace, name)
    with api_errors(f"pods of {kind.lower()} {namespace}/{name}"):
        pods = core(ctx).list_namespaced_pod(namespace, label_selector=selector_of(obj)).items
    return judge_workload(kind, obj, pods)


def workload_pods(ctx: KubeAccess, kind: WorkloadKind, namespace: str, name: str) -> list[Any]:
    """The workload's live pods (its selector's matches that are not terminating)."""
    obj = read_object(ctx.api_client, kind, namespace, name)
    selector = selector_string((obj["spec"].get("selector") or {}).get("matchLabels"))
    with api_errors(f"pods of {kind.lower()} {namespace}/{name}"):
        pods = core(ctx).list_namespaced_pod(namespace, label_selector=selector).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def set_template_annotation(
    ctx: KubeAccess,
    kind: WorkloadKind,
    namespace: str,
    name: str,
    key: str,
    value: str | None,
    resource_version: str | None = None,
) -> None:
    """Merge-patch one pod-template annotation (None removes it); a resourceVersion makes it a
    conditional write (409 when someone else wrote in between)."""
    patch: dict[str, Any] = {"spec": {"template": {"metadata": {"annotations": {key: value}}}}}
    if resource_version is not None:
        patch["metadata"] = {"resourceVersion": resource_version}
    patch_object(ctx.api_client, kind, namespace, name, patch, MERGE_PATCH, dry(ctx))
