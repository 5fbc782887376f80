"""DaemonSet rollback through ControllerRevisions, as `kubectl rollout undo daemonset` does.

The DaemonSet controller replaces old pods that are not available at once, so once the previous
template is back the pods of a bad revision go without help (unlike a StatefulSet's)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from kubernaut.actions.base import Action, ActionContext, ActionResult
from kubernaut.actions.k8s_workloads import DaemonSetParams
from kubernaut.actions.kubernetes import rollout_wait
from kubernaut.actions.registry import register
from kubernaut.actions.revisions import rollback_set, unrollback_set
from kubernaut.policy import Target


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


__all__ = ["RollbackDaemonSet"]
