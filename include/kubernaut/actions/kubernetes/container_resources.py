"""Raise the cpu/memory requests and limits of one container of a workload (Deployment,
StatefulSet or DaemonSet): ``increase_resources``, and the base of
``increase_statefulset_resources``.

Read, ``ctx.remember_prior`` right before the write, a JSON patch on the container's index with a
`test` of its name and the read resourceVersion (409 re-reads and retries), ``dryRun=All``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field, model_validator

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionParams,
    ActionResult,
    PreconditionFailed,
)
from kubernaut.actions.kubernetes.guards import guarded
from kubernaut.actions.kubernetes.rollouts import WorkloadKind, rollout_wait
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Bounds, Target

Resource = Literal["cpu", "memory"]


class IncreaseResourcesParams(ActionParams):
    namespace: NamespaceName
    kind: WorkloadKind = "Deployment"
    name: ObjectName
    container: str = Field(min_length=1, max_length=63, description="Container to change")
    factor: float | None = Field(default=None, gt=1.0, description="Multiply current requests and limits")
    resources: list[Resource] = Field(default=["cpu", "memory"], description="What `factor` scales")
    requests: dict[Resource, str] = Field(default_factory=dict, description="Absolute new requests")
    limits: dict[Resource, str] = Field(default_factory=dict, description="Absolute new limits")

    @model_validator(mode="after")
    def _one_way(self) -> IncreaseResourcesParams:
        from kubernaut.kube.quantity import parse

        if (self.factor is None) == (not self.requests and not self.limits):
            raise ValueError("give either factor or absolute requests/limits, not both or neither")
        for value in [*self.requests.values(), *self.limits.values()]:
            parse(value)
        return self


def _container_index(obj: dict[str, Any], container: str, what: str) -> int:
    containers = obj["spec"]["template"]["spec"].get("containers") or []
    for index, item in enumerate(containers):
        if item.get("name") == container:
            return index
    names = ", ".join(c.get("name", "?") for c in containers)
    raise PreconditionFailed(f"{what} has no container {container!r} (containers: {names})")


def new_resources(current: dict[str, Any], params: IncreaseResourcesParams) -> tuple[dict[str, Any], float]:
    """The container's new `resources` and the largest increase factor (for the policy)."""
    from kubernaut.kube.quantity import format_quantity, parse, scaled

    result = copy.deepcopy(current)
    largest = 1.0
    if params.factor is not None:
        for section in ("requests", "limits"):
            for res in params.resources:
                if res in (result.get(section) or {}):
                    result[section][res] = scaled(res, str(result[section][res]), params.factor)
        if result == current:
            raise PreconditionFailed(
                f"container {params.container!r} has no {'/'.join(params.resources)} "
                "requests or limits to scale; give absolute values instead"
            )
        _check_requests_within_limits(result, params)
        return result, params.factor
    for section, values in (("requests", params.requests), ("limits", params.limits)):
        for res, value in values.items():
            old = (current.get(section) or {}).get(res)
            new = parse(value)
            if old is not None:
                if new < parse(str(old)):
                    raise PreconditionFailed(
                        f"{section}.{res} {value} is below the current {old}: this action only increases"
                    )
                if parse(str(old)) > 0:
                    largest = max(largest, float(new / parse(str(old))))
            result.setdefault(section, {})[res] = format_quantity(res, new)
    _check_requests_within_limits(result, params)
    return result, largest


def _check_requests_within_limits(resources: dict[str, Any], params: IncreaseResourcesParams) -> None:
    """The API server answers 422 to a request above its limit: refuse before calling it."""
    from kubernaut.kube.quantity import parse

    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for res in sorted(set(requests) & set(limits)):
        if parse(str(requests[res])) > parse(str(limits[res])):
            raise PreconditionFailed(
                f"{params.kind.lower()} {params.namespace}/{params.name} container {params.container!r}: "
                f"requests.{res} {requests[res]} would exceed limits.{res} {limits[res]}, which the API "
                f"server refuses; raise limits.{res} to at least {requests[res]} as well"
            )


@register
class IncreaseResources(Action[IncreaseResourcesParams]):
    kind = "kubernetes"
    name = "increase_resources"
    Params = IncreaseResourcesParams
    mutating = True
    summary = "Raise cpu/memory requests and limits of one container of a workload (factor or absolute)."
    changes = (
        "one container's `resources` (JSON patch on its index, `test` of its name, resourceVersion); "
        "requests above limits are refused before the call"
    )
    undo_doc = "restores the container's recorded `resources`"
    dry_run_doc = "`dryRun=All` patch"

    def targets(self, ctx: ActionContext, params: IncreaseResourcesParams) -> list[Target]:
        return [Target(params.kind, params.namespace, params.name)]

    def bounds(self, ctx: ActionContext, params: IncreaseResourcesParams) -> Bounds:
        from kubernaut.kube.objects import read_object

        if params.factor is not None:
            return Bounds(resource_factor=params.factor)
        obj = read_object(ctx.api_client, params.kind, params.namespace, params.name)
        index = _container_index(obj, params.container, self._what(params))
        current = obj["spec"]["template"]["spec"]["containers"][index].get("resources") or {}
        return Bounds(resource_factor=new_resources(current, params)[1])

    @staticmethod
    def _what(params: IncreaseResourcesParams) -> str:
        return f"{params.kind.lower()} {params.namespace}/{params.name}"

    def _write(
        self,
        ctx: ActionContext,
        params: IncreaseResourcesParams,
        obj: dict[str, Any],
        index: int,
        resources: dict[str, Any],
    ) -> None:
        from kubernaut.kube.clients import JSON_PATCH, dry
        from kubernaut.kube.objects import patch_object

        path = f"/spec/template/spec/containers/{index}"
        ops = guarded(
            obj["metadata"]["resourceVersion"],
            [
                # The index is only right while that container is still there: `test` guards it.
                {"op": "test", "path": f"{path}/name", "value": params.container},
                {"op": "add", "path": f"{path}/resources", "value": resources},
            ],
        )
        patch_object(ctx.api_client, params.kind, params.namespace, params.name, ops, JSON_PATCH, dry(ctx))

    def run(self, ctx: ActionContext, params: IncreaseResourcesParams) -> ActionResult:
        from kubernaut.kube.errors import retry_on_conflict
        from kubernaut.kube.objects import read_object

        def attempt() -> ActionResult:
            obj = read_object(ctx.api_client, params.kind, params.namespace, params.name)
            index = _container_index(obj, params.container, self._what(params))
            current = obj["spec"]["template"]["spec"]["containers"][index].get("resources") or {}
            prior = ctx.prior_undo
            if prior is not None and current != prior["resources"]:
                output = {"container": params.container, "resources": current, "already_done": True}
                return ActionResult(output=output, undo=prior, changed=True)
            wanted, factor = new_resources(current, params)
            undo = ctx.remember_prior({"container": params.container, "resources": current})
            self._write(ctx, params, obj, index, wanted)
            output = {
                "container": params.container,
                "resources_before": current,
                "resources": wanted,
                "factor": round(factor, 3),
                "dry_run": ctx.dry_run,
            }
            return ActionResult(output=output, undo=undo, changed=not ctx.dry_run)

        result = retry_on_conflict(attempt)
        result.wait = rollout_wait(ctx, params.kind, params.namespace, params.name)
        return result

    def undo(
        self, ctx: ActionContext, params: IncreaseResourcesParams, record: dict[str, Any]
    ) -> dict[str, Any]:
        from kubernaut.kube.errors import retry_on_conflict
        from kubernaut.kube.objects import read_object

        def attempt() -> dict[str, Any]:
            obj = read_object(ctx.api_client, params.kind, params.namespace, params.name)
            index = _container_index(obj, record["container"], self._what(params))
            current = obj["spec"]["template"]["spec"]["containers"][index].get("resources") or {}
            if current == record["resources"]:
                return {"restored": False, "reason": "resources already as before"}
            self._write(ctx, params, obj, index, record["resources"])
            return {"restored": True, "resources": record["resources"]}

        return retry_on_conflict(attempt)


__all__ = ["IncreaseResources", "IncreaseResourcesParams", "new_resources"]
