"""Deployment actions: scale, read the rollout status, restart, roll back to a revision.

Every mutating action reads the object first and returns the prior state it changes as its undo
record (``ctx.remember_prior`` right before a conditional write); ``undo`` restores it and is
harmless when run twice. Dry-run uses the API's ``dryRun=All``.
"""

from __future__ import annotations

import datetime
from typing import Any

from pydantic import Field

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionParams,
    ActionResult,
    PreconditionFailed,
)
from kubernaut.actions.kubernetes.revisions import (
    deployment_revision,
    replace_template,
    restore_deployment_template,
    revision_templates,
)
from kubernaut.actions.kubernetes.rollouts import rollout_wait
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Bounds, Target

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


class DeploymentParams(ActionParams):
    namespace: NamespaceName
    deployment: ObjectName


class ScaleDeploymentParams(DeploymentParams):
    replicas: int = Field(ge=0, description="Desired replica count")


def _set_replicas(
    ctx: ActionContext, namespace: str, name: str, replicas: int, *, journal: bool
) -> tuple[int, dict[str, Any] | None]:
    """Set replicas through /scale with the read resourceVersion (conflicts re-read and
    retried). With ``journal`` the prior count is persisted before the change."""
    from kubernaut.kube import clients
    from kubernaut.kube.errors import api_errors, retry_on_conflict

    apps = clients.apps(ctx)
    what = f"deployment {namespace}/{name}"

    def attempt() -> tuple[int, dict[str, Any] | None]:
        with api_errors(what):
            scale = apps.read_namespaced_deployment_scale(name, namespace)
        before = int(scale.spec.replicas or 0)
        undo = ctx.remember_prior({"replicas": before}) if journal else None
        if before != replicas:
            scale.spec.replicas = replicas
            with api_errors(what):
                apps.replace_namespaced_deployment_scale(name, namespace, scale, **clients.dry(ctx))
        return before, undo

    return retry_on_conflict(attempt)


@register
class ScaleDeployment(Action[ScaleDeploymentParams]):
    kind = "kubernetes"
    name = "scale_deployment"
    Params = ScaleDeploymentParams
    mutating = True
    summary = "Set a deployment's replicas (prior count is the undo record); waits until ready."
    changes = "`spec.replicas` through `/scale` (resourceVersion; conflicts retried); waits until Ready"
    undo_doc = "restores the recorded replica count"
    dry_run_doc = "`dryRun=All` replace of `/scale`"

    def targets(self, ctx: ActionContext, params: ScaleDeploymentParams) -> list[Target]:
        return [Target("Deployment", params.namespace, params.deployment)]

    def bounds(self, ctx: ActionContext, params: ScaleDeploymentParams) -> Bounds:
        return Bounds(replicas=params.replicas)

    def run(self, ctx: ActionContext, params: ScaleDeploymentParams) -> ActionResult:
        before, undo = _set_replicas(ctx, params.namespace, params.deployment, params.replicas, journal=True)
        return ActionResult(
            output={"replicas_before": before, "replicas": params.replicas},
            undo=undo,
            changed=before != params.replicas and not ctx.dry_run,
            wait=rollout_wait(
                ctx, "Deployment", params.namespace, params.deployment, replicas=params.replicas
            ),
        )

    def undo(
        self, ctx: ActionContext, params: ScaleDeploymentParams, record: dict[str, Any]
    ) -> dict[str, Any]:
        target = int(record["replicas"])
        before, _ = _set_replicas(ctx, params.namespace, params.deployment, target, journal=False)
        return {"replicas": target, "replicas_before_undo": before, "restored": before != target}


@register
class GetDeploymentStatus(Action[DeploymentParams]):
    kind = "kubernetes"
    name = "get_deployment_status"
    Params = DeploymentParams
    summary = "Read a deployment's desired, updated, ready and available replicas and crashing pods."

    def run(self, ctx: ActionContext, params: DeploymentParams) -> ActionResult:
        from kubernaut.kube import clients
        from kubernaut.kube.errors import api_errors
        from kubernaut.kube.rollout import rollout_status

        with api_errors(f"deployment {params.namespace}/{params.deployment}"):
            dep = clients.apps(ctx).read_namespaced_deployment(params.deployment, params.namespace)
        return ActionResult(output=rollout_status(clients.core(ctx), dep))


@register
class RolloutRestartDeployment(Action[DeploymentParams]):
    kind = "kubernetes"
    name = "rollout_restart_deployment"
    Params = DeploymentParams
    mutating = True
    summary = "Restart all pods of a deployment as `kubectl rollout restart` does; waits for the rollout."
    changes = "pod-template annotation `kubectl.kubernetes.io/restartedAt`; waits for the rollout"
    undo_doc = "restores the previous annotation, rolling back to the previous ReplicaSet"
    dry_run_doc = "`dryRun=All` patch"

    def targets(self, ctx: ActionContext, params: DeploymentParams) -> list[Target]:
        return [Target("Deployment", params.namespace, params.deployment)]

    def run(self, ctx: ActionContext, params: DeploymentParams) -> ActionResult:
        from kubernaut.kube import clients
        from kubernaut.kube.clients import MERGE_PATCH
        from kubernaut.kube.errors import api_errors

        apps = clients.apps(ctx)
        what = f"deployment {params.namespace}/{params.deployment}"
        with api_errors(what):
            dep = apps.read_namespaced_deployment(params.deployment, params.namespace)
        annotations = dep.spec.template.metadata.annotations or {} if dep.spec.template.metadata else {}
        prior = ctx.prior_undo
        if prior is not None and annotations.get(RESTARTED_AT) != prior["restartedAt"]:
            # An interrupted earlier attempt already restarted it: restarting twice is a double change.
            output = {"restartedAt": annotations.get(RESTARTED_AT), "already_done": True}
            wait = rollout_wait(ctx, "Deployment", params.namespace, params.deployment)
            return ActionResult(output=output, undo=prior, changed=True, wait=wait)
        undo = ctx.remember_prior(
            {"restartedAt": annotations.get(RESTARTED_AT), "generation": dep.metadata.generation}
        )
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {
            "metadata": {"resourceVersion": dep.metadata.resource_version},
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}},
        }
        with api_errors(what):
            apps.patch_namespaced_deployment(
                params.deployment, params.namespace, patch, _content_type=MERGE_PATCH, **clients.dry(ctx)
            )
        wait = rollout_wait(ctx, "Deployment", params.namespace, params.deployment)
        return ActionResult(output={"restartedAt": now}, undo=undo, changed=not ctx.dry_run, wait=wait)

    def undo(self, ctx: ActionContext, params: DeploymentParams, record: dict[str, Any]) -> dict[str, Any]:
        # Restoring the previous template annotation rolls back to the previous ReplicaSet.
        from kubernaut.kube import clients
        from kubernaut.kube.clients import MERGE_PATCH
        from kubernaut.kube.errors import api_errors

        apps = clients.apps(ctx)
        what = f"deployment {params.namespace}/{params.deployment}"
        with api_errors(what):
            dep = apps.read_namespaced_deployment(params.deployment, params.namespace)
        current = (dep.spec.template.metadata.annotations or {}).get(RESTARTED_AT)
        previous = record.get("restartedAt")
        if current == previous:
            return {"restored": False, "reason": "template already as before"}
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: previous}}}}}
        with api_errors(what):
            apps.patch_namespaced_deployment(
                params.deployment, params.namespace, patch, _content_type=MERGE_PATCH, **clients.dry(ctx)
            )
        return {"restored": True, "restartedAt": previous}


# --- rollback_deployment ----------------------------------------------------------------------


class RollbackDeploymentParams(ActionParams):
    namespace: NamespaceName
    deployment: ObjectName
    to_revision: int | None = Field(
        default=None, ge=1, description="Revision to return to (default: previous)"
    )


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
            revision = deployment_revision(dep) or max(templates, default=0)
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
        if not restore_deployment_template(ctx, params.namespace, params.deployment, record["template"]):
            return {"restored": False, "reason": "template already as before"}
        return {"restored": True, "revision": record["revision"]}


__all__ = ["GetDeploymentStatus", "RollbackDeployment", "RolloutRestartDeployment", "ScaleDeployment"]
