"""DaemonSet actions: restart all pods (``kubectl rollout restart``), roll back through
ControllerRevisions as `kubectl rollout undo daemonset` does.

The DaemonSet controller replaces old pods that are not available at once, so once the previous
template is back the pods of a bad revision go without help (unlike a StatefulSet's)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionParams,
    ActionResult,
)
from kubernaut.actions.kubernetes.revisions import rollback_set, unrollback_set
from kubernaut.actions.kubernetes.rollouts import rollout_restart, rollout_wait, unrestart_workload
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Target


class DaemonSetParams(ActionParams):
    namespace: NamespaceName
    daemonset: ObjectName


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


class RollbackDaemonSetParams(DaemonSetParams):
    only_if_stuck: bool = Field(
        default=True,
        description="Change nothing if the rollout has completed (all pods updated and available)",
    )
    to_revision: int | None = Field(
        default=None, ge=1, description="ControllerRevision to return to (default: previous)"
    )


@register
class RollbackDaemonSet(Action[RollbackDaemonSetParams]):
    kind = "kubernetes"
    name = "rollback_daemonset"
    Params = RollbackDaemonSetParams
    mutating = True
    summary = "Roll a DaemonSet back to its previous ControllerRevision, as `kubectl rollout undo`."
    changes = "`spec.template` := the ControllerRevision's template (JSON patch, resourceVersion); waits"
    undo_doc = "puts back the pod template that was replaced"
    dry_run_doc = "`dryRun=All` patch"

    def targets(self, ctx: ActionContext, params: RollbackDaemonSetParams) -> list[Target]:
        return [Target("DaemonSet", params.namespace, params.daemonset)]

    def run(self, ctx: ActionContext, params: RollbackDaemonSetParams) -> ActionResult:
        result = rollback_set(
            ctx, "DaemonSet", params.namespace, params.daemonset, params.to_revision, params.only_if_stuck
        )
        result.wait = rollout_wait(ctx, "DaemonSet", params.namespace, params.daemonset)
        return result

    def undo(
        self, ctx: ActionContext, params: RollbackDaemonSetParams, record: dict[str, Any]
    ) -> dict[str, Any]:
        return unrollback_set(ctx, "DaemonSet", params.namespace, params.daemonset, record)


__all__ = ["RestartDaemonSet", "RollbackDaemonSet"]
