"""Workload actions: delete a pod, scale a StatefulSet, restart a DaemonSet, roll a Deployment
back, raise a container's resources, change an HPA's bounds.

Pattern of every mutating action: read, ``ctx.remember_prior`` right before the write, a
conditional write (resourceVersion: 409 re-reads and retries), ``dryRun=All`` in a dry run.
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
from kubernaut.actions.kubernetes import RestartPod, RestartPodParams, rollout_wait
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Bounds, Target

# kube.workloads.WorkloadKind, spelled out: importing kube.workloads loads the kubernetes
# client, which a parameter model (built when Airflow parses the DAG files) must not need.
WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet"]

REVISION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"


def guarded(resource_version: str, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A JSON patch that only applies to the version we read: the API answers 409 otherwise."""
    return [{"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version}, *ops]


# --- delete_pod -------------------------------------------------------------------------------


class DeletePodParams(RestartPodParams):
    allow_unowned: bool = Field(
        default=True, description="Also delete a pod without controller (undo recreates it from its manifest)"
    )


@register
class DeletePod(RestartPod):
    name = "delete_pod"
    Params = DeletePodParams
    summary = "Delete a pod (uid precondition); a bare pod is recreated from its manifest by undo."
    changes = "deletes the pod (uid precondition); a controller, if any, replaces it"
    undo_doc = (
        "recreates a pod without controller from its recorded manifest (scheduled afresh: no nodeName); "
        "an owned pod is not restorable (its controller made a new one)"
    )


# --- scale_statefulset ------------------------------------------------------------------------


class ScaleStatefulSetParams(ActionParams):
    namespace: NamespaceName
    statefulset: ObjectName
    replicas: int = Field(ge=0, description="Desired replica count")


def set_statefulset_replicas(
    ctx: ActionContext, namespace: str, name: str, replicas: int, *, journal: bool
) -> tuple[int, dict[str, Any] | None]:
    """Through /scale with the read resourceVersion; a conflict re-reads and retries."""
    from kubernaut.kube.clients import apps, dry
    from kubernaut.kube.errors import api_errors, retry_on_conflict

    api, what = apps(ctx), f"statefulset {namespace}/{name}"

    def attempt() -> tuple[int, dict[str, Any] | None]:
        with api_errors(what):
            scale = api.read_namespaced_stateful_set_scale(name, namespace)
        before = int(scale.spec.replicas or 0)
        undo = ctx.remember_prior({"replicas": before}) if journal else None
        if before != replicas:
            scale.spec.replicas = replicas
            with api_errors(what):
                api.replace_namespaced_stateful_set_scale(name, namespace, scale, **dry(ctx))
        return before, undo

    return retry_on_conflict(attempt)


@register
class ScaleStatefulSet(Action[ScaleStatefulSetParams]):
    kind = "kubernetes"
    name = "scale_statefulset"
    Params = ScaleStatefulSetParams
    mutating = True
    summary = "Set a StatefulSet's replicas (prior count is the undo record); waits until all are Ready."
    changes = "`spec.replicas` through `/scale` (resourceVersion; conflicts retried); waits until Ready"
    undo_doc = "restores the recorded replica count"
    dry_run_doc = "`dryRun=All` replace of `/scale`"

    def targets(self, ctx: ActionContext, params: ScaleStatefulSetParams) -> list[Target]:
        return [Target("StatefulSet", params.namespace, params.statefulset)]

    def bounds(self, ctx: ActionContext, params: ScaleStatefulSetParams) -> Bounds:
        return Bounds(replicas=params.replicas)

    def run(self, ctx: ActionContext, params: ScaleStatefulSetParams) -> ActionResult:
        before, undo = set_statefulset_replicas(
            ctx, params.namespace, params.statefulset, params.replicas, journal=True
        )
        wait = rollout_wait(
            ctx, "StatefulSet", params.namespace, params.statefulset, replicas=params.replicas
        )
        return ActionResult(
            output={"replicas_before": before, "replicas": params.replicas, "dry_run": ctx.dry_run},
            undo=undo,
            changed=before != params.replicas and not ctx.dry_run,
            wait=wait,
        )

    def undo(
        self, ctx: ActionContext, params: ScaleStatefulSetParams, record: dict[str, Any]
    ) -> dict[str, Any]:
        target = int(record["replicas"])
        before, _ = set_statefulset_replicas(ctx, params.namespace, params.statefulset, target, journal=False)
        return {"replicas": target, "replicas_before_undo": before, "restored": before != target}


# --- restart_daemonset ------------------------------------------------------------------------


class DaemonSetParams(ActionParams):
    namespace: NamespaceName
    daemonset: ObjectName


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


@register
class RestartDaemonSet(Action[DaemonSetParams]):
    kind = "kubernetes"
    name = "restart_daemonset"
    Params = DaemonSetParams
    mutating = True
    summary = "Restart all pods of a DaemonSet as `kubectl rollout restart` does; waits for the rollout."
    changes = "pod-template annotation `kubectl.kubernetes.io/restartedAt` (resourceVersion); waits"
    undo_doc = "restores the previous annotation (another rolling restart to the previous template)"
    dry_run_doc = "`dryRun=All` patch"

    def targets(self, ctx: ActionContext, params: DaemonSetParams) -> list[Target]:
        return [Target("DaemonSet", params.namespace, params.daemonset)]

    def run(self, ctx: ActionContext, params: DaemonSetParams) -> ActionResult:
        return rollout_restart(ctx, "DaemonSet", params.namespace, params.daemonset)

    def undo(self, ctx: ActionContext, params: DaemonSetParams, record: dict[str, Any]) -> dict[str, Any]:
        return unrestart_workload(ctx, "DaemonSet", params.namespace, params.daemonset, record["restartedAt"])


# --- rollback_deployment ----------------------------------------------------------------------


class RollbackDeploymentParams(ActionParams):
    namespace: NamespaceName
    deployment: ObjectName
    to_revision: int | None = Field(
        default=None, ge=1, description="Revision to return to (default: previous)"
    )


def _revision(obj: dict[str, Any]) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def revision_templates(ctx: ActionContext, dep: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Pod templates of the deployment's ReplicaSets by revision, `pod-template-hash` removed."""
    from kubernaut.kube.clients import apps
    from kubernaut.kube.errors import api_errors
    from kubernaut.kube.pods import selector_string

    namespace, uid = dep["metadata"]["namespace"], dep["metadata"]["uid"]
    selector = selector_string((dep["spec"].get("selector") or {}).get("matchLabels"))
    with api_errors(f"replicasets of deployment {namespace}/{dep['metadata']['name']}"):
        items = apps(ctx).list_namespaced_replica_set(namespace, label_selector=selector).items
    templates: dict[int, dict[str, Any]] = {}
    for rs in items:
        data = ctx.api_client.sanitize_for_serialization(rs)
        owners = data["metadata"].get("ownerReferences") or []
        if not any(o.get("controller") and o.get("uid") == uid for o in owners):
            continue
        template = copy.deepcopy(data["spec"]["template"])
        labels = (template.get("metadata") or {}).get("labels") or {}
        labels.pop(POD_TEMPLATE_HASH, None)
        templates[_revision(data)] = template
    return templates


def replace_template(
    ctx: ActionContext, namespace: str, name: str, resource_version: str, template: dict[str, Any]
) -> None:
    from kubernaut.kube.clients import JSON_PATCH, dry
    from kubernaut.kube.objects import patch_object

    ops = guarded(resource_version, [{"op": "replace", "path": "/spec/template", "value": template}])
    patch_object(ctx.api_client, "Deployment", namespace, name, ops, JSON_PATCH, dry(ctx))


@register
class RollbackDeployment(Action[RollbackDeploymentParams]):
    kind = "kubernetes"
    name = "rollback_deployment"
    Params = RollbackDeploymentParams
    mutating = True
    summary = "Roll a deployment back to its previous ReplicaSet revision, as `kubectl rollout undo`."
    changes = "`spec.template` := previous ReplicaSet's template (JSON patch, resourceVersion); waits"
    undo_doc = "puts back the pod template that was replaced"
    dry_run_doc = "`dryRun=All` patch"

    def targets(self, ctx: ActionContext, params: RollbackDeploymentParams) -> list[Target]:
        return [Target("Deployment", params.namespace, params.deployment)]

    def run(self, ctx: ActionContext, params: RollbackDeploymentParams) -> ActionResult:
        from kubernaut.kube.errors import retry_on_conflict
        from kubernaut.kube.objects import read_object

        def attempt() -> ActionResult:
            dep = read_object(ctx.api_client, "Deployment", params.namespace, params.deployment)
            current = dep["spec"]["template"]
            prior = ctx.prior_undo
            if prior is not None and current != prior["template"]:
                output = {"revision": prior["revision"], "to_revision": prior["to_revision"]}
                return ActionResult(output={**output, "already_done": True}, undo=prior, changed=True)
            templates = revision_templates(ctx, dep)
            revision = _revision(dep) or max(templates, default=0)
            wanted = params.to_revision or max((r for r in templates if r < revision), default=None)
            if wanted is None or wanted not in templates:
                raise PreconditionFailed(
                    f"deployment {params.namespace}/{params.deployment}: no revision "
                    f"{wanted if wanted is not None else 'before ' + str(revision)} to roll back to "
                    f"(known revisions: {sorted(templates) or 'none'})"
                )
            output = {"revision": revision, "to_revision": wanted, "dry_run": ctx.dry_run}
            if templates[wanted] == current:
                return ActionResult(output={**output, "unchanged": True})
            undo = ctx.remember_prior({"template": current, "revision": revision, "to_revision": wanted})
            replace_template(
                ctx,
                params.namespace,
                params.deployment,
                dep["metadata"]["resourceVersion"],
                templates[wanted],
            )
            return ActionResult(output=output, undo=undo, changed=not ctx.dry_run)

        result = retry_on_conflict(attempt)
        result.wait = rollout_wait(ctx, "Deployment", params.namespace, params.deployment)
        return result

    def undo(
        self, ctx: ActionContext, params: RollbackDeploymentParams, record: dict[str, Any]
    ) -> dict[str, Any]:
        from kubernaut.kube.errors import retry_on_conflict
        from kubernaut.kube.objects import read_object

        def attempt() -> dict[str, Any]:
            dep = read_object(ctx.api_client, "Deployment", params.namespace, params.deployment)
            if dep["spec"]["template"] == record["template"]:
                return {"restored": False, "reason": "template already as before"}
            replace_template(
                ctx,
                params.namespace,
                params.deployment,
                dep["metadata"]["resourceVersion"],
                record["template"],
            )
            return {"restored": True, "revision": record["revision"]}

        return retry_on_conflict(attempt)


# --- increase_resources -----------------------------------------------------------------------

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


__all__ = [
    "DeletePod",
    "IncreaseResources",
    "RestartDaemonSet",
    "RollbackDeployment",
    "ScaleStatefulSet",
    "UpdateHpa",
    "restart_workload",
    "unrestart_workload",
]
