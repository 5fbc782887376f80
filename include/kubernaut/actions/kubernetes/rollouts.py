"""Workload rollouts shared by the Deployment, StatefulSet and DaemonSet actions (and the
config actions that restart consumers): ``kubectl rollout restart``, its undo, the wait for a
rollout."""

from __future__ import annotations

from typing import Any, Literal

from kubernaut.actions.base import ActionContext, ActionResult
from kubernaut.waits.spec import WaitSpec

# kube.workloads.WorkloadKind, spelled out: importing kube.workloads loads the kubernetes
# client, which a parameter model (built when Airflow parses the DAG files) must not need.
WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet"]


def rollout_wait(
    ctx: ActionContext,
    kind: str,
    namespace: str,
    name: str,
    *,
    replicas: int | None = None,
    within: float | None = None,
) -> WaitSpec:
    """Until the workload has rolled out (with ``replicas`` wanted, if given): kubernaut.waits.rollout."""
    targets = [{"kind": kind, "namespace": namespace, "name": name, "replicas": replicas}]
    what = f"rollout of {kind.lower()} {namespace}/{name}"
    return ctx.wait("rollout", {"targets": targets}, what=what, within=within)


def restart_workload(
    ctx: ActionContext, kind: WorkloadKind, namespace: str, name: str
) -> tuple[dict[str, Any], bool]:
    """`kubectl rollout restart`: stamp the pod template; returns (undo record, already_done)."""
    from kubernaut.kube.errors import retry_on_conflict
    from kubernaut.kube.objects import read_object
    from kubernaut.kube.workloads import (
        RESTARTED_AT,
        now_rfc3339,
        set_template_annotation,
        template_annotation,
    )

    def attempt() -> tuple[dict[str, Any], bool]:
        obj = read_object(ctx.api_client, kind, namespace, name)
        current = template_annotation(obj, RESTARTED_AT)
        prior = ctx.prior_undo
        if prior is not None and current != prior.get("restartedAt"):
            return prior, True  # an interrupted attempt already restarted it: never restart twice
        undo = ctx.remember_prior({"restartedAt": current})
        set_template_annotation(
            ctx, kind, namespace, name, RESTARTED_AT, now_rfc3339(), obj["metadata"]["resourceVersion"]
        )
        return undo, False

    return retry_on_conflict(attempt)


def unrestart_workload(
    ctx: ActionContext, kind: WorkloadKind, namespace: str, name: str, previous: str | None
) -> dict[str, Any]:
    """Undo of a restart: the previous template annotation (the previous pod template) again."""
    from kubernaut.kube.errors import retry_on_conflict
    from kubernaut.kube.objects import read_object
    from kubernaut.kube.workloads import RESTARTED_AT, set_template_annotation, template_annotation

    def attempt() -> dict[str, Any]:
        obj = read_object(ctx.api_client, kind, namespace, name)
        if template_annotation(obj, RESTARTED_AT) == previous:
            return {"restored": False, "reason": "template already as before"}
        set_template_annotation(
            ctx, kind, namespace, name, RESTARTED_AT, previous, obj["metadata"]["resourceVersion"]
        )
        return {"restored": True, "restartedAt": previous}

    return retry_on_conflict(attempt)


def rollout_restart(ctx: ActionContext, kind: WorkloadKind, namespace: str, name: str) -> ActionResult:
    """``kubectl rollout restart`` of a DaemonSet or StatefulSet: the restart, its undo record
    and a wait for the rollout."""
    undo, done = restart_workload(ctx, kind, namespace, name)
    output = {"restartedAt_before": undo["restartedAt"], "already_done": done, "dry_run": ctx.dry_run}
    wait = rollout_wait(ctx, kind, namespace, name)
    return ActionResult(output=output, undo=undo, changed=not ctx.dry_run, wait=wait)


__all__ = ["WorkloadKind", "restart_workload", "rollout_restart", "rollout_wait", "unrestart_workload"]
