"""acme_remediation/actions.py: a Kubernetes action of your own.

Sets one annotation on a Deployment; its undo puts the previous value back (or removes
the annotation if there was none). docs/custom-actions.md shows this file verbatim and
tests/custom/test_docs_example.py runs it against the sandbox cluster.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import V1Deployment
from pydantic import Field

from kubernaut.actions import Action, ActionContext, ActionParams, ActionResult, VerificationFailed
from kubernaut.kube.clients import MERGE_PATCH, apps, dry
from kubernaut.kube.errors import api_errors, retry_on_conflict
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Target

# A qualified annotation key: an optional DNS prefix, '/', then a name.
ANNOTATION_KEY = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"


class AnnotateParams(ActionParams):  # extra="forbid": a misspelt name is a load error
    namespace: NamespaceName  # DNS-1123 checked: the values may come from alert labels
    deployment: ObjectName
    key: str = Field(pattern=ANNOTATION_KEY, max_length=253)
    value: str = Field(max_length=1024)


class AnnotateDeployment(Action[AnnotateParams]):
    kind = "kubernetes"  # kubernetes | monitoring | custom
    name = "acme_annotate_deployment"  # prefix with your organisation's name: no clashes
    Params = AnnotateParams
    mutating = True  # journaled before the change; refused without the history database
    summary = "Set one annotation on a Deployment."
    changes = "one Deployment annotation (merge patch with resourceVersion)"
    undo_doc = "restores the previous value, or removes the annotation if there was none"
    dry_run_doc = "`dryRun=All` patch"

    def targets(self, ctx: ActionContext, params: AnnotateParams) -> list[Target]:
        # What the safety policy checks: protected namespaces and the opt-in label.
        return [Target("Deployment", params.namespace, params.deployment)]

    def run(self, ctx: ActionContext, params: AnnotateParams) -> ActionResult:
        def attempt() -> ActionResult:
            deployment = _read(ctx, params)
            current = _annotation(deployment, params.key)
            if current == params.value:
                # Done already: by an interrupted earlier attempt of this step (its journaled
                # record is ctx.prior_undo: keep it for the rollback) or by someone else.
                return ActionResult(
                    output={"unchanged": True}, undo=ctx.prior_undo, changed=ctx.prior_undo is not None
                )
            # Journal the prior state right BEFORE the change (an earlier attempt's record wins).
            undo = ctx.remember_prior({"key": params.key, "previous": current})
            _patch(ctx, params, {params.key: params.value}, deployment.metadata.resource_version)
            output = {"key": params.key, "value": params.value, "previous": current, "dry_run": ctx.dry_run}
            return ActionResult(output=output, undo=undo, changed=not ctx.dry_run)

        # A concurrent writer changed the Deployment between our read and write (409): again.
        return retry_on_conflict(attempt)

    def verify(self, ctx: ActionContext, params: AnnotateParams, result: ActionResult) -> None:
        if _annotation(_read(ctx, params), params.key) != params.value:
            raise VerificationFailed(f"deployment {params.namespace}/{params.deployment} lacks {params.key}")

    def undo(self, ctx: ActionContext, params: AnnotateParams, record: dict[str, Any]) -> dict[str, Any]:
        def attempt() -> dict[str, Any]:
            deployment = _read(ctx, params)
            if _annotation(deployment, record["key"]) == record["previous"]:
                return {"restored": False}  # undone already: a second undo changes nothing
            # In a JSON merge patch, None (null) removes the key.
            _patch(ctx, params, {record["key"]: record["previous"]}, deployment.metadata.resource_version)
            return {"restored": True}

        return retry_on_conflict(attempt)


def _read(ctx: ActionContext, params: AnnotateParams) -> V1Deployment:
    # api_errors turns ApiException into NotFound/Conflict/ActionError naming the object.
    with api_errors(f"deployment {params.namespace}/{params.deployment}"):
        deployment: V1Deployment = apps(ctx).read_namespaced_deployment(params.deployment, params.namespace)
    return deployment


def _annotation(deployment: V1Deployment, key: str) -> str | None:
    annotations: dict[str, str] = deployment.metadata.annotations or {}
    return annotations.get(key)


def _patch(
    ctx: ActionContext, params: AnnotateParams, annotations: dict[str, str | None], resource_version: str
) -> None:
    # resourceVersion makes the write conditional on what we read; dry(ctx) adds dryRun=All.
    body = {"metadata": {"resourceVersion": resource_version, "annotations": annotations}}
    with api_errors(f"deployment {params.namespace}/{params.deployment}"):
        apps(ctx).patch_namespaced_deployment(
            params.deployment, params.namespace, body, _content_type=MERGE_PATCH, **dry(ctx)
        )
