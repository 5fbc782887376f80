"""Pod actions: read a pod's status and logs, restart or delete it, and recreate a bare pod.

Every mutating action reads the object first and returns the prior state it changes
as its undo record; ``undo`` restores it and is harmless when run twice. Dry-run uses
the API's ``dryRun=All`` so a real cluster still validates the change.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import Field

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionError,
    ActionParams,
    ActionResult,
    NotRestorable,
    PreconditionFailed,
)
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Target
from kubernaut.waits.spec import WaitSpec


class PodParams(ActionParams):
    namespace: NamespaceName
    pod: ObjectName


@register
class GetPodStatus(Action[PodParams]):
    kind = "kubernetes"
    name = "get_pod_status"
    Params = PodParams
    summary = "Read a pod's phase, readiness, restarts, container states and owner."

    def run(self, ctx: ActionContext, params: PodParams) -> ActionResult:
        from kubernaut.kube import clients
        from kubernaut.kube.pods import deployment_of_replicaset, pod_summary, read_pod_seen

        pod, seen = read_pod_seen(clients.core(ctx), params.namespace, params.pod)
        # When the API server answered: pods created from then on cannot be this pod's siblings
        # (validate_pod_health takes it as `since` to tell the pod's replacement from them).
        observed = seen.strftime("%Y-%m-%dT%H:%M:%SZ")
        if pod is None:
            output = {
                "exists": False,
                "name": params.pod,
                "namespace": params.namespace,
                "observedAt": observed,
            }
            return ActionResult(output=output)
        summary = {**pod_summary(pod), "observedAt": observed}
        owner = summary["owner"] or {}
        deployment = owner.get("name") if owner.get("kind") == "Deployment" else None
        if owner.get("kind") == "ReplicaSet":
            deployment = deployment_of_replicaset(clients.apps(ctx), params.namespace, owner["name"])
        return ActionResult(output={"exists": True, **summary, "deployment": deployment or ""})


class PodLogsParams(PodParams):
    container: str | None = Field(default=None, description="Container name (default: the only one)")
    tail_lines: int = Field(default=50, ge=1, le=5000, description="Lines from the end of the log")
    previous: bool = Field(default=False, description="Log of the previous (crashed) container instance")


@register
class GetPodLogs(Action[PodLogsParams]):
    kind = "kubernetes"
    name = "get_pod_logs"
    Params = PodLogsParams
    summary = "Read the last lines of a pod's log (optionally of the previous container instance)."

    def run(self, ctx: ActionContext, params: PodLogsParams) -> ActionResult:
        from kubernaut.kube import clients
        from kubernaut.kube.errors import api_errors
        from kubernaut.kube.pods import read_log

        extra: dict[str, Any] = {"container": params.container} if params.container else {}
        with api_errors(f"log of pod {params.namespace}/{params.pod}"):
            text = read_log(
                clients.core(ctx),
                params.namespace,
                params.pod,
                tail_lines=params.tail_lines,
                previous=params.previous,
                **extra,
            )
        lines = text.splitlines()
        return ActionResult(output={"lines": lines, "count": len(lines)})


class RestartPodParams(PodParams):
    grace_period_seconds: int | None = Field(
        default=None, ge=0, description="Override the pod's grace period"
    )
    allow_unowned: bool = Field(
        default=False,
        description="Also restart a pod no controller will recreate (undo recreates it from its manifest)",
    )


@register
class RestartPod(Action[RestartPodParams]):
    kind = "kubernetes"
    name = "restart_pod"
    Params = RestartPodParams
    mutating = True
    summary = "Delete a pod so its controller replaces it (the pod's manifest is the undo record)."

    changes = "deletes the pod (uid precondition) so its controller replaces it"
    undo_doc = (
        "recreates a bare pod from its recorded manifest (scheduled afresh: no nodeName); "
        "an owned pod is not restorable (its controller made a new one)"
    )
    dry_run_doc = "`dryRun=All` delete"

    def targets(self, ctx: ActionContext, params: RestartPodParams) -> list[Target]:
        return [Target("Pod", params.namespace, params.pod)]

    def precheck(self, ctx: ActionContext, params: RestartPodParams) -> None:
        from kubernaut.kube import clients
        from kubernaut.kube.pods import controller_of, read_pod

        pod = read_pod(clients.core(ctx), params.namespace, params.pod)
        if pod is None:
            if ctx.prior_undo is not None:
                return  # an interrupted earlier attempt already deleted it
            raise PreconditionFailed(f"pod {params.namespace}/{params.pod} not found")
        if controller_of(pod.metadata) is None and not params.allow_unowned:
            raise PreconditionFailed(
                f"pod {params.namespace}/{params.pod} has no controller, so nothing would recreate it; "
                "set allow_unowned: true to restart it anyway"
            )
        # A pod on a NotReady node is a symptom: restarting it fixes nothing (its replacement
        # cannot start there, and the node's own remediation evicts it). Checked at run time
        # too, whatever the intake decided (issue #10: symptom suppression).
        node_name = pod.spec.node_name if pod.spec else None
        if node_name:
            from kubernaut.kube.errors import api_errors
            from kubernaut.kube.node_health import node_problem

            with api_errors(f"node {node_name}"):
                why = node_problem(clients.core(ctx), node_name)
            if why:
                raise PreconditionFailed(
                    f"root cause: node {node_name} NotReady ({why}); pod {params.namespace}/{params.pod} "
                    "is not restarted: remediate the node"
                )

    def run(self, ctx: ActionContext, params: RestartPodParams) -> ActionResult:
        from kubernetes import client

        from kubernaut.kube import clients
        from kubernaut.kube.errors import api_errors
        from kubernaut.kube.pods import controller_of, read_pod, sanitized_manifest

        core = clients.core(ctx)
        pod = read_pod(core, params.namespace, params.pod)
        prior = ctx.prior_undo
        if prior is not None and (pod is None or pod.metadata.uid != prior["uid"]):
            # The pod this step meant to restart is already gone: never delete its successor.
            output = {"deleted": prior["uid"], "owner": prior["owner"], "dry_run": ctx.dry_run}
            wait = pod_gone_wait(ctx, params.namespace, params.pod, prior["uid"])
            return ActionResult(output={**output, "already_done": True}, undo=prior, changed=True, wait=wait)
        if pod is None:
            raise ActionError(f"pod {params.namespace}/{params.pod} not found")
        owner = controller_of(pod.metadata)
        undo = ctx.remember_prior(
            {
                "pod": sanitized_manifest(ctx.api_client, pod),
                "uid": pod.metadata.uid,
                "owner": owner.to_dict() if owner else None,
            }
        )
        # The uid precondition makes sure we delete this pod, not a same-named successor.
        body = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=pod.metadata.uid),
            grace_period_seconds=params.grace_period_seconds,
        )
        with api_errors(f"pod {params.namespace}/{params.pod}"):
            core.delete_namespaced_pod(params.pod, params.namespace, body=body, **clients.dry(ctx))
        return ActionResult(
            output={"deleted": pod.metadata.uid, "owner": undo["owner"], "dry_run": ctx.dry_run},
            undo=undo,
            changed=not ctx.dry_run,
            wait=pod_gone_wait(ctx, params.namespace, params.pod, pod.metadata.uid),
        )

    def undo(self, ctx: ActionContext, params: RestartPodParams, record: dict[str, Any]) -> dict[str, Any]:
        return recreate_unowned_pod(ctx, record)


def pod_gone_wait(ctx: ActionContext, namespace: str, pod: str, uid: str) -> WaitSpec:
    """Until no pod of that name has that uid (deleted, or replaced under the same name)."""
    args = {"namespace": namespace, "pod": pod, "uid": uid}
    return ctx.wait("pod_replaced", args, what=f"deletion of pod {namespace}/{pod}")


# Set by the API server or the scheduler, or refused on create: a recreated pod starts without them.
SERVER_SET_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def recreatable(manifest: dict[str, Any]) -> dict[str, Any]:
    """A recorded pod as a new pod: no server-set metadata or status, and no ``spec.nodeName``,
    so the scheduler places it again (its old node may be the one being drained or repaired);
    no ephemeral containers (only the /ephemeralcontainers subresource adds those)."""
    pod = copy.deepcopy(manifest)
    meta = pod.setdefault("metadata", {})
    for key in SERVER_SET_METADATA:
        meta.pop(key, None)
    pod.pop("status", None)
    spec = pod.get("spec") or {}
    spec.pop("nodeName", None)
    spec.pop("ephemeralContainers", None)
    return pod


def recreate_unowned_pod(ctx: ActionContext, record: dict[str, Any]) -> dict[str, Any]:
    """A bare pod is created again from its recorded manifest; a pod with a controller cannot
    come back (its controller replaced it with another pod): NotRestorable."""
    from kubernaut.kube import clients
    from kubernaut.kube.errors import api_errors
    from kubernaut.kube.pods import read_pod
    from kubernaut.kube.waiting import wait_for

    manifest = record.get("pod") or {}
    meta = manifest.get("metadata", {})
    namespace, name = meta.get("namespace"), meta.get("name")
    owner = record.get("owner")
    if owner:
        raise NotRestorable(
            f"pod {namespace}/{name} was deleted and its {owner['kind']} {owner['name']} replaced it "
            "with a new pod: the deleted pod cannot come back"
        )
    core = clients.core(ctx)
    pod = read_pod(core, namespace, name)
    if pod is not None and pod.metadata.uid == record.get("uid") and pod.metadata.deletion_timestamp:
        # Still Terminating: its name is taken until its kubelet has stopped it.
        def gone() -> tuple[bool, str]:
            current = read_pod(core, namespace, name)
            return current is None or current.metadata.uid != record.get("uid"), "still terminating"

        wait_for(ctx, gone, what=f"end of the deleted pod {namespace}/{name}")
        pod = read_pod(core, namespace, name)
    if pod is not None:
        if pod.metadata.uid == record.get("uid"):
            return {"restored": False, "reason": "the pod was not deleted"}
        return {"restored": False, "reason": "a pod of that name exists again"}
    with api_errors(f"pod {namespace}/{name}"):
        core.create_namespaced_pod(namespace, recreatable(manifest), **clients.dry(ctx))
    return {"restored": True, "pod": f"{namespace}/{name}"}


@register
class RollbackPodRestart(Action[PodParams]):
    kind = "kubernetes"
    name = "rollback_pod_restart"
    Params = PodParams
    mutating = True
    summary = "Rollback for restart_pod: recreate a bare pod from its recorded manifest."
    changes = "creates the pod again if it had no controller and is gone"
    dry_run_doc = "`dryRun=All` create"

    def targets(self, ctx: ActionContext, params: PodParams) -> list[Target]:
        return [Target("Pod", params.namespace, params.pod)]

    def run(self, ctx: ActionContext, params: PodParams) -> ActionResult:
        if not ctx.undo_record:
            return ActionResult(output={"restored": False, "reason": "no undo record: the restart never ran"})
        return ActionResult(output=recreate_unowned_pod(ctx, ctx.undo_record), changed=True)


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


__all__ = ["DeletePod", "GetPodLogs", "GetPodStatus", "RestartPod", "RollbackPodRestart", "pod_gone_wait"]
