"""RBAC (``rbac.authorization.k8s.io/v1``): revoke access by removing one subject from a
RoleBinding or ClusterRoleBinding.

The removal is a JSON patch that only applies to the version read (resourceVersion) and
whose ``test`` operation checks the subject is still at the index read, so a concurrent
change is retried on fresh data, never applied to the wrong subject. ``subjects`` has no merge
key (``+listType=atomic``): a strategic merge patch would replace the whole list.

Bindings the API server reconciles (annotation ``rbac.authorization.kubernetes.io/autoupdate:
"true"``, the ``system:`` defaults) are refused: it would put the subject back on restart.
Undo puts the subject back at its recorded position.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult, PreconditionFailed
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Target

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
SubjectKind = Literal["User", "Group", "ServiceAccount"]


class RemoveRoleBindingSubjectParams(ActionParams):
    binding_kind: Literal["RoleBinding", "ClusterRoleBinding"] = "RoleBinding"
    namespace: NamespaceName | None = Field(default=None, description="The RoleBinding's namespace")
    binding: ObjectName
    subject_kind: SubjectKind
    subject_name: str = Field(min_length=1, max_length=253)
    subject_namespace: NamespaceName | None = Field(default=None, description="A ServiceAccount's namespace")

    @field_validator("namespace", "subject_namespace", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value  # a template renders a missing alert label as ""

    @model_validator(mode="after")
    def _scoped(self) -> RemoveRoleBindingSubjectParams:
        if self.binding_kind == "RoleBinding" and not self.namespace:
            raise ValueError("namespace is required for a RoleBinding")
        if self.binding_kind == "ClusterRoleBinding" and self.namespace:
            raise ValueError("a ClusterRoleBinding has no namespace")
        if self.subject_kind == "ServiceAccount" and not self.subject_namespace:
            raise ValueError("subject_namespace is required for a ServiceAccount subject")
        if self.subject_kind != "ServiceAccount" and self.subject_namespace:
            raise ValueError("subject_namespace applies to ServiceAccount subjects only")
        return self

    def matches(self, subject: dict[str, Any]) -> bool:
        return (
            subject.get("kind") == self.subject_kind
            and subject.get("name") == self.subject_name
            and (self.subject_kind != "ServiceAccount" or subject.get("namespace") == self.subject_namespace)
        )

    def describe_subject(self) -> str:
        where = f"{self.subject_namespace}/" if self.subject_namespace else ""
        return f"{self.subject_kind} {where}{self.subject_name}"


def _what(params: RemoveRoleBindingSubjectParams) -> str:
    where = f"{params.namespace}/" if params.namespace else ""
    return f"{params.binding_kind.lower()} {where}{params.binding}"


def _read(ctx: ActionContext, params: RemoveRoleBindingSubjectParams) -> dict[str, Any]:
    from kubernaut.kube.objects import read_object

    return read_object(ctx.api_client, params.binding_kind, params.namespace, params.binding)


def _patch(ctx: ActionContext, params: RemoveRoleBindingSubjectParams, ops: list[dict[str, Any]]) -> None:
    from kubernaut.kube.clients import JSON_PATCH, dry
    from kubernaut.kube.objects import patch_object

    patch_object(
        ctx.api_client, params.binding_kind, params.namespace, params.binding, ops, JSON_PATCH, dry(ctx)
    )


def _version(binding: dict[str, Any]) -> dict[str, Any]:
    return {
        "op": "replace",
        "path": "/metadata/resourceVersion",
        "value": binding["metadata"]["resourceVersion"],
    }


@register
class RemoveRoleBindingSubject(Action[RemoveRoleBindingSubjectParams]):
    kind = "kubernetes"
    name = "remove_role_binding_subject"
    Params = RemoveRoleBindingSubjectParams
    mutating = True
    summary = "Revoke access: remove one subject (User, Group, ServiceAccount) from a (Cluster)RoleBinding."
    changes = "the binding's `subjects` (JSON patch: resourceVersion, `test` of the subject, `remove`)"
    undo_doc = "puts the subject back at its recorded position"
    dry_run_doc = "`dryRun=All` patch"

    def targets(self, ctx: ActionContext, params: RemoveRoleBindingSubjectParams) -> list[Target]:
        return [Target(params.binding_kind, params.namespace, params.binding)]

    def precheck(self, ctx: ActionContext, params: RemoveRoleBindingSubjectParams) -> None:
        binding = _read(ctx, params)
        if (binding["metadata"].get("annotations") or {}).get(AUTOUPDATE) == "true":
            raise PreconditionFailed(
                f'{_what(params)} is reconciled by the API server ({AUTOUPDATE}: "true"): '
                "a removed subject would come back; change it by hand if at all"
            )

    def run(self, ctx: ActionContext, params: RemoveRoleBindingSubjectParams) -> ActionResult:
        from kubernaut.kube.errors import retry_on_conflict

        def attempt() -> ActionResult:
            binding = _read(ctx, params)
            subjects = list(binding.get("subjects") or [])
            index = next((i for i, s in enumerate(subjects) if params.matches(s)), None)
            output: dict[str, Any] = {
                "binding": _what(params),
                "subject": params.describe_subject(),
                "role": binding.get("roleRef"),
                "dry_run": ctx.dry_run,
            }
            if index is None:
                done = ctx.prior_undo is not None  # a retried step removed it already
                output.update(removed=done, already_done=done, not_present=not done)
                return ActionResult(output=output, undo=ctx.prior_undo, changed=done)
            undo = ctx.remember_prior({"index": index, "subject": subjects[index]})
            ops = [
                _version(binding),
                {"op": "test", "path": f"/subjects/{index}", "value": subjects[index]},
                {"op": "remove", "path": f"/subjects/{index}"},
            ]
            _patch(ctx, params, ops)
            output.update(removed=True, index=index, subjects_left=len(subjects) - 1)
            return ActionResult(output=output, undo=undo, changed=not ctx.dry_run)

        return retry_on_conflict(attempt)

    def verify(
        self, ctx: ActionContext, params: RemoveRoleBindingSubjectParams, result: ActionResult
    ) -> None:
        from kubernaut.actions.base import VerificationFailed

        if any(params.matches(s) for s in _read(ctx, params).get("subjects") or []):
            raise VerificationFailed(f"{_what(params)} still binds {params.describe_subject()}")

    def undo(
        self, ctx: ActionContext, params: RemoveRoleBindingSubjectParams, record: dict[str, Any]
    ) -> dict[str, Any]:
        from kubernaut.kube.errors import retry_on_conflict

        def attempt() -> dict[str, Any]:
            binding = _read(ctx, params)
            subjects = list(binding.get("subjects") or [])
            if any(params.matches(s) for s in subjects):
                return {"restored": False, "reason": f"{params.describe_subject()} is bound already"}
            index = min(int(record["index"]), len(subjects))
            if subjects:
                add = {"op": "add", "path": f"/subjects/{index}", "value": record["subject"]}
            else:
                add = {"op": "add", "path": "/subjects", "value": [record["subject"]]}
            _patch(ctx, params, [_version(binding), add])
            return {"restored": True, "subject": record["subject"], "index": index}

        return retry_on_conflict(attempt)


__all__ = ["RemoveRoleBindingSubject"]
