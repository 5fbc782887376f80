"""Capacity actions: a HorizontalPodAutoscaler's replica bounds, a ResourceQuota's hard limits.

ResourceQuota: raise a namespace's hard limits within the policy's bounds.

Only raises: a value below the current limit, or a resource the quota does not limit yet (a new
limit restricts more), is refused before anything changes. The largest ratio new/old is the
step's resource factor, which the policy bounds (``max_resource_factor``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import Field, model_validator

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionParams,
    ActionResult,
    PreconditionFailed,
)
from kubernaut.actions.kubernetes.guards import guarded
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Bounds, Target

# --- update_hpa -------------------------------------------------------------------------------


class UpdateHpaParams(ActionParams):
    namespace: NamespaceName
    hpa: ObjectName
    min_replicas: int | None = Field(default=None, ge=1, description="New spec.minReplicas")
    max_replicas: int | None = Field(default=None, ge=1, description="New spec.maxReplicas")

    @model_validator(mode="after")
    def _something(self) -> UpdateHpaParams:
        if self.min_replicas is None and self.max_replicas is None:
            raise ValueError("give min_replicas and/or max_replicas")
        return self


def _hpa_bounds(hpa: dict[str, Any]) -> dict[str, int | None]:
    return {"minReplicas": hpa["spec"].get("minReplicas"), "maxReplicas": hpa["spec"].get("maxReplicas")}


def set_hpa_bounds(
    ctx: ActionContext, namespace: str, name: str, hpa: dict[str, Any], wanted: dict[str, int | None]
) -> None:
    from kubernaut.kube.clients import MERGE_PATCH, dry
    from kubernaut.kube.objects import patch_object

    patch = {"metadata": {"resourceVersion": hpa["metadata"]["resourceVersion"]}, "spec": wanted}
    patch_object(ctx.api_client, "HorizontalPodAutoscaler", namespace, name, patch, MERGE_PATCH, dry(ctx))


@register
class UpdateHpa(Action[UpdateHpaParams]):
    kind = "kubernetes"
    name = "update_hpa"
    Params = UpdateHpaParams
    mutating = True
    summary = "Change an autoscaling/v2 HorizontalPodAutoscaler's minReplicas/maxReplicas."
    changes = "`spec.minReplicas`/`spec.maxReplicas` (merge patch with resourceVersion)"
    undo_doc = "restores the recorded min/max"
    dry_run_doc = "`dryRun=All` patch"

    def targets(self, ctx: ActionContext, params: UpdateHpaParams) -> list[Target]:
        return [Target("HorizontalPodAutoscaler", params.namespace, params.hpa)]

    def bounds(self, ctx: ActionContext, params: UpdateHpaParams) -> Bounds:
        return Bounds(replicas=max(params.max_replicas or 0, params.min_replicas or 0))

    def run(self, ctx: ActionContext, params: UpdateHpaParams) -> ActionResult:
        from kubernaut.kube.errors import retry_on_conflict
        from kubernaut.kube.objects import read_object

        def attempt() -> ActionResult:
            hpa = read_object(ctx.api_client, "HorizontalPodAutoscaler", params.namespace, params.hpa)
            before = _hpa_bounds(hpa)
            wanted = {
                "minReplicas": params.min_replicas
                if params.min_replicas is not None
                else before["minReplicas"],
                "maxReplicas": params.max_replicas
                if params.max_replicas is not None
                else before["maxReplicas"],
            }
            if (wanted["minReplicas"] or 1) > (wanted["maxReplicas"] or 0):
                raise PreconditionFailed(
                    f"hpa {params.namespace}/{params.hpa}: minReplicas {wanted['minReplicas']} "
                    f"would exceed maxReplicas {wanted['maxReplicas']}"
                )
            output = {"before": before, "after": wanted, "dry_run": ctx.dry_run}
            if wanted == before:
                return ActionResult(output=output, undo=ctx.prior_undo)
            undo = ctx.remember_prior(before)
            set_hpa_bounds(ctx, params.namespace, params.hpa, hpa, wanted)
            return ActionResult(output=output, undo=undo, changed=not ctx.dry_run)

        return retry_on_conflict(attempt)

    def verify(self, ctx: ActionContext, params: UpdateHpaParams, result: ActionResult) -> None:
        from kubernaut.kube.objects import read_object
        from kubernaut.kube.waiting import wait_for

        wanted = result.output["after"]

        def check() -> tuple[bool, dict[str, int | None]]:
            seen = _hpa_bounds(
                read_object(ctx.api_client, "HorizontalPodAutoscaler", params.namespace, params.hpa)
            )
            return seen == wanted, seen

        wait_for(ctx, check, what=f"hpa {params.namespace}/{params.hpa} bounds {wanted}")

    def undo(self, ctx: ActionContext, params: UpdateHpaParams, record: dict[str, Any]) -> dict[str, Any]:
        from kubernaut.kube.errors import retry_on_conflict
        from kubernaut.kube.objects import read_object

        def attempt() -> dict[str, Any]:
            hpa = read_object(ctx.api_client, "HorizontalPodAutoscaler", params.namespace, params.hpa)
            if _hpa_bounds(hpa) == record:
                return {"restored": False, "reason": "bounds already as before"}
            set_hpa_bounds(ctx, params.namespace, params.hpa, hpa, dict(record))
            return {"restored": True, **record}

        return retry_on_conflict(attempt)


# --- update_resource_quota ----------------------------------------------------------------------

CPU_KEYS = ("cpu", "requests.cpu", "limits.cpu")
MEMORY_KEYS = (
    "memory",
    "requests.memory",
    "limits.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.ephemeral-storage",
)


class UpdateResourceQuotaParams(ActionParams):
    namespace: NamespaceName
    quota: ObjectName
    hard: dict[str, str] = Field(
        default_factory=dict, description="New absolute hard limits, e.g. {pods: '20', requests.memory: 8Gi}"
    )
    factor: float | None = Field(default=None, gt=1.0, description="Or: multiply the current hard limits")
    resources: list[str] | None = Field(
        default=None, description="What `factor` scales (default: every hard limit)"
    )

    @model_validator(mode="after")
    def _one_way(self) -> UpdateResourceQuotaParams:
        from kubernaut.kube.quantity import parse

        if (self.factor is None) == (not self.hard):
            raise ValueError("give either factor or hard, not both or neither")
        if self.resources is not None and self.factor is None:
            raise ValueError("resources applies to factor only")
        for key, value in self.hard.items():
            try:
                parse(value)
            except ValueError as exc:
                raise ValueError(f"hard.{key}: {exc}") from exc
        return self


def _format(key: str, value: Decimal) -> str:
    from kubernaut.kube.quantity import format_cpu, format_memory

    if key in CPU_KEYS:
        return format_cpu(value)
    if key in MEMORY_KEYS:
        return format_memory(value)
    return str(int(value.to_integral_value(rounding="ROUND_CEILING")))  # object counts: whole numbers, up


def new_hard(
    current: dict[str, str], params: UpdateResourceQuotaParams, what: str
) -> tuple[dict[str, str], float]:
    """The hard limits to set (only those that change) and the largest increase factor."""
    from kubernaut.kube.quantity import parse

    if params.factor is not None:
        keys = params.resources if params.resources is not None else sorted(current)
        wanted = {
            k: _format(k, parse(current[k]) * Decimal(str(params.factor))) for k in keys if k in current
        }
        missing = sorted(set(keys) - set(current))
    else:
        wanted, missing = dict(params.hard), sorted(set(params.hard) - set(current))
    if missing:
        raise PreconditionFailed(
            f"{what} has no hard limit for {', '.join(missing)} "
            f"(limits: {', '.join(sorted(current)) or 'none'}); this action only raises existing limits"
        )
    largest = 1.0
    for key, value in wanted.items():
        old, new = parse(current[key]), parse(value)
        if new < old:
            raise PreconditionFailed(
                f"{what}: hard.{key} {value} is below the current {current[key]}: this action only raises"
            )
        if old > 0:
            largest = max(largest, float(new / old))
        elif new > 0:
            largest = float("inf")  # from nothing: no factor bounds it
    changed = {k: v for k, v in wanted.items() if parse(v) != parse(current[k])}
    return changed, largest


def _pointer(key: str) -> str:
    return "/spec/hard/" + key.replace("~", "~0").replace("/", "~1")


def _set_hard(
    ctx: ActionContext, namespace: str, name: str, quota: dict[str, Any], values: dict[str, str]
) -> None:
    from kubernaut.kube.clients import JSON_PATCH, dry
    from kubernaut.kube.objects import patch_object

    ops = guarded(
        quota["metadata"]["resourceVersion"],
        [{"op": "replace", "path": _pointer(k), "value": v} for k, v in sorted(values.items())],
    )
    patch_object(ctx.api_client, "ResourceQuota", namespace, name, ops, JSON_PATCH, dry(ctx))


@register
class UpdateResourceQuota(Action[UpdateResourceQuotaParams]):
    kind = "kubernetes"
    name = "update_resource_quota"
    Params = UpdateResourceQuotaParams
    mutating = True
    summary = (
        "Raise a ResourceQuota's hard limits (absolute or by factor), within the policy's resource factor."
    )
    changes = "`spec.hard` entries (JSON patch, resourceVersion); lowering or adding a limit is refused"
    undo_doc = "restores the recorded hard limits it changed"
    dry_run_doc = "`dryRun=All` patch"

    def _what(self, params: UpdateResourceQuotaParams) -> str:
        return f"resourcequota {params.namespace}/{params.quota}"

    def targets(self, ctx: ActionContext, params: UpdateResourceQuotaParams) -> list[Target]:
        return [Target("ResourceQuota", params.namespace, params.quota)]

    def bounds(self, ctx: ActionContext, params: UpdateResourceQuotaParams) -> Bounds:
        from kubernaut.kube.objects import read_object

        if params.factor is not None:
            return Bounds(resource_factor=params.factor)
        quota = read_object(ctx.api_client, "ResourceQuota", params.namespace, params.quota)
        return Bounds(
            resource_factor=new_hard(quota["spec"].get("hard") or {}, params, self._what(params))[1]
        )

    def run(self, ctx: ActionContext, params: UpdateResourceQuotaParams) -> ActionResult:
        from kubernaut.kube.errors import retry_on_conflict
        from kubernaut.kube.objects import read_object

        def attempt() -> ActionResult:
            quota = read_object(ctx.api_client, "ResourceQuota", params.namespace, params.quota)
            current = dict(quota["spec"].get("hard") or {})
            prior = ctx.prior_undo
            if prior is not None and any(current.get(k) != v for k, v in prior["hard"].items()):
                output = {"hard": current, "already_done": True}
                return ActionResult(output=output, undo=prior, changed=True)
            changed, factor = new_hard(current, params, self._what(params))
            used = (quota.get("status") or {}).get("used") or {}
            output = {
                "hard_before": current,
                "hard": {**current, **changed},
                "used": used,
                "factor": round(factor, 3),
                "dry_run": ctx.dry_run,
            }
            if not changed:
                return ActionResult(output={**output, "unchanged": True}, undo=prior)
            undo = ctx.remember_prior({"hard": {k: current[k] for k in changed}})
            _set_hard(ctx, params.namespace, params.quota, quota, changed)
            return ActionResult(output=output, undo=undo, changed=not ctx.dry_run)

        return retry_on_conflict(attempt)

    def verify(self, ctx: ActionContext, params: UpdateResourceQuotaParams, result: ActionResult) -> None:
        """The quota controller has taken the new limits (``status.hard``): admission uses them."""
        from kubernaut.kube.objects import read_object
        from kubernaut.kube.quantity import parse
        from kubernaut.kube.waiting import wait_for

        wanted = result.output["hard"]

        def check() -> tuple[bool, dict[str, str]]:
            quota = read_object(ctx.api_client, "ResourceQuota", params.namespace, params.quota)
            seen = (quota.get("status") or {}).get("hard") or {}
            same = all(k in seen and parse(seen[k]) == parse(v) for k, v in wanted.items())
            return same, seen

        wait_for(ctx, check, what=f"{self._what(params)} status.hard {wanted}", timeout=60)

    def undo(
        self, ctx: ActionContext, params: UpdateResourceQuotaParams, record: dict[str, Any]
    ) -> dict[str, Any]:
        from kubernaut.kube.errors import retry_on_conflict
        from kubernaut.kube.objects import read_object

        def attempt() -> dict[str, Any]:
            quota = read_object(ctx.api_client, "ResourceQuota", params.namespace, params.quota)
            current = quota["spec"].get("hard") or {}
            differs = {k: v for k, v in record["hard"].items() if current.get(k) != v}
            if not differs:
                return {"restored": False, "reason": "hard limits already as before"}
            _set_hard(ctx, params.namespace, params.quota, quota, differs)
            return {"restored": True, "hard": record["hard"]}

        return retry_on_conflict(attempt)


__all__ = ["UpdateHpa", "UpdateResourceQuota", "new_hard"]
