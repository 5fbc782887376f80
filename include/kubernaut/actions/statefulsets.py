"""StatefulSet actions: roll back to an earlier ControllerRevision, restart all pods.

``rollback_statefulset`` does what ``kubectl rollout undo statefulset`` does: it finds the set's
ControllerRevisions (its selector, controlled by it), takes the previous one (or ``to_revision``)
and puts that revision's pod template back, here as a JSON patch guarded by the read
resourceVersion. With the default OrderedReady pod management a rollout stuck on a pod that
never becomes Ready does not go on by itself once the template is reverted ("forced rollback" in
the StatefulSet documentation): the action then deletes the set's pods of other revisions that
are not Ready, so the controller recreates them from the restored template.

The ControllerRevision helpers (``controller_revisions``, ``rollback_set``, ``unrollback_set``)
live in ``kubernaut.actions.revisions``, shared with the DaemonSet rollback.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult
from kubernaut.actions.k8s_workloads import rollout_restart, unrestart_workload
from kubernaut.actions.kubernetes import rollout_wait
from kubernaut.actions.registry import register
from kubernaut.actions.revisions import controller_revisions, revision_template, rollback_set, unrollback_set
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Target

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


__all__ = [
    "RestartStatefulSet",
    "RollbackStatefulSet",
    "controller_revisions",
    "delete_stuck_pods",
    "revision_template",
    "rollback_set",
    "unrollback_set",
]
