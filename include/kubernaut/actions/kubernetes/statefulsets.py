"""StatefulSet actions: scale, restart all pods, roll back to an earlier ControllerRevision, raise a
container's resources (and get the stuck pods replaced), read the rollout state.

``rollback_statefulset`` does what ``kubectl rollout undo statefulset`` does: it finds the set's
ControllerRevisions (its selector, controlled by it), takes the previous one (or ``to_revision``)
and puts that revision's pod template back, here as a JSON patch guarded by the read
resourceVersion. With the default OrderedReady pod management a rollout stuck on a pod that
never becomes Ready does not go on by itself once the template is reverted ("forced rollback" in
the StatefulSet documentation): the action then deletes the set's pods of other revisions that
are not Ready, so the controller recreates them from the restored template.

The ControllerRevision helpers (``controller_revisions``, ``rollback_set``, ``unrollback_set``)
live in ``kubernaut.actions.kubernetes.revisions``, shared with the DaemonSet rollback.

Raising resources: ``increase_resources`` on a StatefulSet writes the new pod template, but a
StatefulSet's rolling update (and, with the default OrderedReady pod management, any progress at
all) waits while a pod is not Running and Ready: pods OOM-killed again and again under the old limit keep the
update from ever starting (the "forced rollback" case of the StatefulSet documentation, here
forward). ``increase_statefulset_resources`` makes the same change, waits until the controller
has observed it (``status.observedGeneration``, ``status.updateRevision``), then deletes the
set's pods of other revisions that are not Ready (uid precondition), so the controller recreates
them from the new template, lowest ordinal first; Ready pods are left to the rolling update.
Then it waits for the rollout. Undo restores the container's recorded ``resources``; deleted
pods were recreated by the controller and follow whatever template the set has.

Status: ``get_statefulset_status`` tells a template whether the set is in the middle of an update
(``status.currentRevision`` differs from ``status.updateRevision``) and, given a pod, whether
that pod already runs the update revision (its ``controller-revision-hash`` label). A pod of
the update revision that cannot pull its image during an update points at the update; the
same symptom on a set that is not updating (a registry outage, an image deleted) does not,
and rolling back would then change a database's version for nothing.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionParams,
    ActionResult,
)
from kubernaut.actions.kubernetes.container_resources import IncreaseResources, IncreaseResourcesParams
from kubernaut.actions.kubernetes.revisions import (
    rollback_set,
    unrollback_set,
)
from kubernaut.actions.kubernetes.rollouts import rollout_restart, rollout_wait, unrestart_workload
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Bounds, Target

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


# --- rollback_statefulset, restart_statefulset --------------------------------------------------

REVISION_HASH = "controller-revision-hash"


def delete_stuck_pods(ctx: ActionContext, obj: dict[str, Any], revision_name: str) -> list[str]:
    """Pods of the set of another revision than ``revision_name`` that are not Ready: deleted
    (uid precondition), so the controller recreates them from the restored template."""
    from kubernetes import client

    from kubernaut.kube.clients import core, dry
    from kubernaut.kube.errors import NotFound, api_errors
    from kubernaut.kube.pods import is_ready, selector_string

    meta = obj["metadata"]
    namespace = meta["namespace"]
    selector = selector_string((obj["spec"].get("selector") or {}).get("matchLabels"))
    api = core(ctx)
    with api_errors(f"pods of statefulset {namespace}/{meta['name']}"):
        pods = api.list_namespaced_pod(namespace, label_selector=selector).items
    deleted = []
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        owners = pod.metadata.owner_references or []
        if not any(o.controller and o.uid == meta["uid"] for o in owners):
            continue
        if (pod.metadata.labels or {}).get(REVISION_HASH) == revision_name or is_ready(pod):
            continue
        if pod.metadata.deletion_timestamp is not None:
            continue
        body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=pod.metadata.uid))
        try:
            with api_errors(f"pod {namespace}/{pod.metadata.name}"):
                api.delete_namespaced_pod(pod.metadata.name, namespace, body=body, **dry(ctx))
        except NotFound:
            continue
        deleted.append(pod.metadata.name)
    return deleted


class StatefulSetParams(ActionParams):
    namespace: NamespaceName
    statefulset: ObjectName


class RollbackStatefulSetParams(StatefulSetParams):
    to_revision: int | None = Field(
        default=None, ge=1, description="ControllerRevision to return to (default: previous)"
    )
    only_if_stuck: bool = Field(
        default=True, description="Change nothing if the rollout has completed (all pods updated and Ready)"
    )
    delete_stuck_pods: bool = Field(
        default=True,
        description=(
            "Delete the set's pods of other revisions that are not Ready "
            "(an OrderedReady rollout does not go on without)"
        ),
    )


@register
class RollbackStatefulSet(Action[RollbackStatefulSetParams]):
    kind = "kubernetes"
    name = "rollback_statefulset"
    Params = RollbackStatefulSetParams
    mutating = True
    summary = "Roll a StatefulSet back to its previous ControllerRevision, as `kubectl rollout undo`."
    changes = (
        "`spec.template` := the ControllerRevision's template (JSON patch, resourceVersion); then deletes "
        "the set's not-Ready pods of other revisions (forced rollback); waits for the rollout"
    )
    undo_doc = "puts back the pod template that was replaced (deleted pods were recreated by the controller)"
    dry_run_doc = "`dryRun=All` patch and deletes"

    def targets(self, ctx: ActionContext, params: RollbackStatefulSetParams) -> list[Target]:
        return [Target("StatefulSet", params.namespace, params.statefulset)]

    def run(self, ctx: ActionContext, params: RollbackStatefulSetParams) -> ActionResult:
        from kubernaut.kube.objects import read_object

        result = rollback_set(
            ctx,
            "StatefulSet",
            params.namespace,
            params.statefulset,
            params.to_revision,
            params.only_if_stuck,
        )
        if params.delete_stuck_pods and not result.output.get("unchanged"):
            obj = read_object(ctx.api_client, "StatefulSet", params.namespace, params.statefulset)
            result.output["deleted_pods"] = delete_stuck_pods(ctx, obj, result.output["to_revision_name"])
        result.wait = rollout_wait(ctx, "StatefulSet", params.namespace, params.statefulset)
        return result

    def undo(
        self, ctx: ActionContext, params: RollbackStatefulSetParams, record: dict[str, Any]
    ) -> dict[str, Any]:
        return unrollback_set(ctx, "StatefulSet", params.namespace, params.statefulset, record)


@register
class RestartStatefulSet(Action[StatefulSetParams]):
    kind = "kubernetes"
    name = "restart_statefulset"
    Params = StatefulSetParams
    mutating = True
    summary = "Restart all pods of a StatefulSet as `kubectl rollout restart` does; waits for the rollout."
    changes = "pod-template annotation `kubectl.kubernetes.io/restartedAt` (resourceVersion); waits"
    undo_doc = "restores the previous annotation (another rolling restart to the previous template)"
    dry_run_doc = "`dryRun=All` patch"

    def targets(self, ctx: ActionContext, params: StatefulSetParams) -> list[Target]:
        return [Target("StatefulSet", params.namespace, params.statefulset)]

    def run(self, ctx: ActionContext, params: StatefulSetParams) -> ActionResult:
        return rollout_restart(ctx, "StatefulSet", params.namespace, params.statefulset)

    def undo(self, ctx: ActionContext, params: StatefulSetParams, record: dict[str, Any]) -> dict[str, Any]:
        return unrestart_workload(
            ctx, "StatefulSet", params.namespace, params.statefulset, record["restartedAt"]
        )


# --- get_statefulset_status -------------------------------------------------------------------


class StatefulSetStatusParams(ActionParams):
    namespace: NamespaceName
    statefulset: ObjectName
    pod: ObjectName | None = Field(default=None, description="Also report this pod's revision")


@register
class GetStatefulSetStatus(Action[StatefulSetStatusParams]):
    kind = "kubernetes"
    name = "get_statefulset_status"
    Params = StatefulSetStatusParams
    summary = (
        "Read a StatefulSet's revisions and counts: is it updating, and does a given pod run the update."
    )

    def run(self, ctx: ActionContext, params: StatefulSetStatusParams) -> ActionResult:
        from kubernaut.kube.clients import core
        from kubernaut.kube.objects import read_object
        from kubernaut.kube.pods import read_pod

        obj = read_object(ctx.api_client, "StatefulSet", params.namespace, params.statefulset)
        status = obj.get("status") or {}
        observed = int(status.get("observedGeneration") or 0) >= int(obj["metadata"].get("generation") or 0)
        current, update = str(status.get("currentRevision") or ""), str(status.get("updateRevision") or "")
        replicas = int(obj["spec"].get("replicas", 1))
        output: dict[str, Any] = {
            "replicas": replicas,
            "readyReplicas": int(status.get("readyReplicas") or 0),
            "updatedReplicas": int(status.get("updatedReplicas") or 0),
            "currentRevision": current,
            "updateRevision": update,
            "observed": observed,
            # An update in progress: the controller has a newer template than some pods run.
            "updating": bool(observed and update and current and update != current),
            "images": {
                c["name"]: c.get("image") for c in obj["spec"]["template"]["spec"].get("containers") or []
            },
        }
        if params.pod:
            pod = read_pod(core(ctx), params.namespace, params.pod)
            revision = ((pod.metadata.labels or {}).get(REVISION_HASH, "") if pod is not None else "") or ""
            output.update(
                podExists=pod is not None,
                podRevision=revision,
                podUpdated=bool(update and revision == update),
            )
        return ActionResult(output=output)


# --- increase_statefulset_resources -----------------------------------------------------------

OBSERVE_TIMEOUT = 30.0  # seconds for the StatefulSet controller to see the new template
OBSERVE_POLL = 0.5


class IncreaseStatefulSetResourcesParams(IncreaseResourcesParams):
    kind: Literal["StatefulSet"] = "StatefulSet"
    delete_stuck_pods: bool = Field(
        default=True,
        description="Delete the set's not-Ready pods of older revisions (the rollout does not start without)",
    )


def observed_update_revision(ctx: ActionContext, namespace: str, name: str) -> tuple[dict[str, Any], str]:
    """The set once its controller has observed its current generation, and its update
    revision ("" when it has not within OBSERVE_TIMEOUT or the step's time)."""
    from kubernaut.kube.objects import read_object

    deadline = time.monotonic() + min(OBSERVE_TIMEOUT, ctx.remaining())
    while True:
        obj = read_object(ctx.api_client, "StatefulSet", namespace, name)
        status = obj.get("status") or {}
        if status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 1) and status.get(
            "updateRevision"
        ):
            return obj, str(status["updateRevision"])
        if time.monotonic() >= deadline:
            return obj, ""
        time.sleep(OBSERVE_POLL)


@register
class IncreaseStatefulSetResources(IncreaseResources):
    name = "increase_statefulset_resources"
    Params = IncreaseStatefulSetResourcesParams
    summary = (
        "Raise cpu/memory of one container of a StatefulSet, then delete its not-Ready pods of older "
        "revisions so the rollout can start; waits for the rollout."
    )
    changes = (
        "one container's `resources` (JSON patch, `test` of its name, resourceVersion); then deletes the "
        "set's not-Ready pods of other revisions (uid precondition)"
    )
    undo_doc = "restores the container's recorded `resources` (deleted pods were recreated by the controller)"
    dry_run_doc = "`dryRun=All` patch; no pod deleted"

    def run(self, ctx: ActionContext, params: IncreaseResourcesParams) -> ActionResult:
        assert isinstance(params, IncreaseStatefulSetResourcesParams)
        result = super().run(ctx, params)
        if ctx.dry_run or not params.delete_stuck_pods:
            return result
        obj, revision = observed_update_revision(ctx, params.namespace, params.name)
        if not revision:
            result.output["deleted_pods"] = []
            result.output["note"] = "the StatefulSet controller has not observed the new template yet"
            return result
        result.output["update_revision"] = revision
        result.output["deleted_pods"] = delete_stuck_pods(ctx, obj, revision)
        return result


__all__ = [
    "GetStatefulSetStatus",
    "IncreaseStatefulSetResources",
    "RestartStatefulSet",
    "RollbackStatefulSet",
    "ScaleStatefulSet",
    "delete_stuck_pods",
]
