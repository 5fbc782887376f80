"""Configuration actions: change ConfigMap keys, rotate a Secret (and restart its consumers)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionError,
    ActionParams,
    ActionResult,
    VerificationFailed,
    sensitive,
)
from kubernaut.actions.kubernetes.rollouts import WorkloadKind, restart_workload, unrestart_workload
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Target


def replace_data(
    ctx: ActionContext, kind: str, namespace: str, name: str, resource_version: str, data: dict[str, str]
) -> None:
    """Exactly this `data` (keys added since are dropped), only over the version we read."""
    from kubernaut.kube.clients import JSON_PATCH, dry
    from kubernaut.kube.objects import patch_object

    ops = [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version},
        {"op": "add", "path": "/data", "value": data},
    ]
    patch_object(ctx.api_client, kind, namespace, name, ops, JSON_PATCH, dry(ctx))


def restore_data(ctx: ActionContext, kind: str, namespace: str, name: str, data: dict[str, str]) -> bool:
    from kubernaut.kube.errors import retry_on_conflict
    from kubernaut.kube.objects import read_object

    def attempt() -> bool:
        obj = read_object(ctx.api_client, kind, namespace, name)
        if (obj.get("data") or {}) == data:
            return False
        replace_data(ctx, kind, namespace, name, obj["metadata"]["resourceVersion"], data)
        return True

    return retry_on_conflict(attempt)


class UpdateConfigMapParams(ActionParams):
    namespace: NamespaceName
    configmap: ObjectName
    set: dict[str, str] = Field(default_factory=dict, description="Keys to set")
    remove: list[str] = Field(default_factory=list, description="Keys to remove")


@register
class UpdateConfigMap(Action[UpdateConfigMapParams]):
    kind = "kubernetes"
    name = "update_configmap"
    Params = UpdateConfigMapParams
    mutating = True
    summary = "Set and/or remove keys of a ConfigMap."
    changes = "ConfigMap `data` keys (merge patch with resourceVersion)"
    undo_doc = "restores the previous `data` exactly"
    dry_run_doc = "`dryRun=All` patch"

    def targets(self, ctx: ActionContext, params: UpdateConfigMapParams) -> list[Target]:
        return [Target("ConfigMap", params.namespace, params.configmap)]

    def run(self, ctx: ActionContext, params: UpdateConfigMapParams) -> ActionResult:
        from kubernaut.kube.clients import MERGE_PATCH, dry
        from kubernaut.kube.errors import retry_on_conflict
        from kubernaut.kube.objects import patch_object, read_object

        def attempt() -> ActionResult:
            obj = read_object(ctx.api_client, "ConfigMap", params.namespace, params.configmap)
            data: dict[str, str] = obj.get("data") or {}
            changes: dict[str, str | None] = {k: v for k, v in params.set.items() if data.get(k) != v}
            changes.update({k: None for k in params.remove if k in data})
            output = {"set": sorted(params.set), "removed": sorted(k for k in params.remove if k in data)}
            if not changes:
                return ActionResult(output={**output, "unchanged": True}, undo=ctx.prior_undo)
            # A retried step re-applies the same keys: idempotent, and the first record is kept.
            undo = ctx.remember_prior({"data": data})
            patch = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "data": changes}
            patch_object(
                ctx.api_client, "ConfigMap", params.namespace, params.configmap, patch, MERGE_PATCH, dry(ctx)
            )
            return ActionResult(output={**output, "dry_run": ctx.dry_run}, undo=undo, changed=not ctx.dry_run)

        return retry_on_conflict(attempt)

    def verify(self, ctx: ActionContext, params: UpdateConfigMapParams, result: ActionResult) -> None:
        from kubernaut.kube.objects import read_object

        data = read_object(ctx.api_client, "ConfigMap", params.namespace, params.configmap).get("data") or {}
        if any(data.get(k) != v for k, v in params.set.items()) or any(k in data for k in params.remove):
            raise VerificationFailed(
                f"configmap {params.namespace}/{params.configmap} does not show the change"
            )

    def undo(
        self, ctx: ActionContext, params: UpdateConfigMapParams, record: dict[str, Any]
    ) -> dict[str, Any]:
        restored = restore_data(ctx, "ConfigMap", params.namespace, params.configmap, record["data"])
        return {"restored": restored}


# --- rotate_secret ----------------------------------------------------------------------------


class Consumer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: WorkloadKind = "Deployment"
    name: ObjectName


class RotateSecretParams(ActionParams):
    namespace: NamespaceName
    secret: ObjectName
    data: dict[str, SecretStr] = sensitive(
        description="New values (plain text): masked in logs, never in XCom or the history in clear"
    )
    replace_all: bool = Field(default=False, description="Drop keys not given (default: keep them)")
    consumers: list[Consumer] = Field(default_factory=list, description="Workloads to rollout-restart")


def fingerprint(data: dict[str, str]) -> str:
    """A hash of the (base64) data: shows that a rotation happened without showing values."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def consumer_annotations(ctx: ActionContext, namespace: str, consumers: list[Consumer]) -> dict[str, Any]:
    """Each consumer's pod-template restartedAt annotation, read before anything changes."""
    from kubernaut.kube.objects import read_object
    from kubernaut.kube.workloads import RESTARTED_AT, template_annotation

    return {
        f"{c.kind}/{c.name}": template_annotation(
            read_object(ctx.api_client, c.kind, namespace, c.name), RESTARTED_AT
        )
        for c in consumers
    }


def restart_consumers(
    ctx: ActionContext, namespace: str, consumers: list[Consumer], recorded: dict[str, Any]
) -> None:
    """Restart each consumer once. Its prior annotation is in the journaled record already, so
    a retried step sees a consumer an earlier attempt restarted (annotation moved on) and skips it."""
    for consumer in consumers:
        key = f"{consumer.kind}/{consumer.name}"
        if key not in recorded:
            raise ActionError(
                f"consumer {key}: not in this step's journaled undo record (written with other "
                "consumers); restart it by hand or start a new run"
            )
        step = ActionContext(
            dry_run=ctx.dry_run,
            timeout=ctx.remaining(),
            prior_undo={"restartedAt": recorded[key]},
            _api_client=ctx.api_client,
        )
        restart_workload(step, consumer.kind, namespace, consumer.name)


@register
class RotateSecret(Action[RotateSecretParams]):
    kind = "kubernetes"
    name = "rotate_secret"
    Params = RotateSecretParams
    mutating = True
    summary = "Replace a Secret's data with the given values and rollout-restart its consumers."
    changes = "Secret `data` (JSON patch with resourceVersion); consumers' restartedAt annotation"
    undo_doc = (
        "restores the previous data (kept Fernet-encrypted in the undo journal) and restarts the consumers"
    )
    dry_run_doc = "`dryRun=All` patch and restarts"

    def targets(self, ctx: ActionContext, params: RotateSecretParams) -> list[Target]:
        return [Target("Secret", params.namespace, params.secret)] + [
            Target(c.kind, params.namespace, c.name) for c in params.consumers
        ]

    @staticmethod
    def _encoded(params: RotateSecretParams) -> dict[str, str]:
        return {k: base64.b64encode(v.get_secret_value().encode()).decode() for k, v in params.data.items()}

    def run(self, ctx: ActionContext, params: RotateSecretParams) -> ActionResult:
        from kubernaut.kube.errors import retry_on_conflict
        from kubernaut.kube.objects import read_object

        wanted = self._encoded(params)

        def attempt() -> dict[str, Any]:
            obj = read_object(ctx.api_client, "Secret", params.namespace, params.secret)
            before: dict[str, str] = obj.get("data") or {}
            new = wanted if params.replace_all else {**before, **wanted}
            prior = ctx.prior_undo
            if prior is not None and before == new:
                return prior  # an earlier attempt rotated it already
            # The complete record, the consumers' prior annotations included, is journaled once
            # before the first change (the journal keeps the first record of a step).
            undo = ctx.remember_prior(
                {
                    "data": before,
                    "sha256_before": fingerprint(before),
                    "restarted": consumer_annotations(ctx, params.namespace, params.consumers),
                }
            )
            if before != new:
                replace_data(
                    ctx, "Secret", params.namespace, params.secret, obj["metadata"]["resourceVersion"], new
                )
            return undo

        undo = retry_on_conflict(attempt)
        restarted = undo["restarted"]
        restart_consumers(ctx, params.namespace, params.consumers, restarted)
        output = {
            "secret": f"{params.namespace}/{params.secret}",
            "keys": sorted(wanted),
            "sha256": fingerprint(wanted),
            "sha256_before": undo["sha256_before"],
            "restarted": sorted(restarted),
            "dry_run": ctx.dry_run,
        }
        # The consumers' rollouts (this step has secret parameters: it waits where it runs).
        targets = [
            {"kind": c.kind, "namespace": params.namespace, "name": c.name, "replicas": None}
            for c in params.consumers
        ]
        what = f"rollout of the consumers of secret {params.namespace}/{params.secret}"
        wait = ctx.wait("rollout", {"targets": targets}, what=what) if targets else None
        return ActionResult(output=output, undo=undo, changed=not ctx.dry_run, wait=wait)

    def verify(self, ctx: ActionContext, params: RotateSecretParams, result: ActionResult) -> None:
        from kubernaut.kube.objects import read_object

        data = read_object(ctx.api_client, "Secret", params.namespace, params.secret).get("data") or {}
        if any(data.get(k) != v for k, v in self._encoded(params).items()):
            raise VerificationFailed(f"secret {params.namespace}/{params.secret} does not hold the new data")

    def undo(self, ctx: ActionContext, params: RotateSecretParams, record: dict[str, Any]) -> dict[str, Any]:
        restored = restore_data(ctx, "Secret", params.namespace, params.secret, record["data"])
        restarts = {}
        if restored:  # consumers pick the old values up only when restarted again
            for key, previous in (record.get("restarted") or {}).items():
                kind, name = key.split("/", 1)
                restarts[key] = unrestart_workload(ctx, kind, params.namespace, name, previous)["restored"]
        return {"restored": restored, "restarted": restarts}


__all__ = ["RotateSecret", "UpdateConfigMap"]
