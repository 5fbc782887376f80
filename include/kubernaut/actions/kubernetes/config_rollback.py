"""Roll back a configuration change of a Deployment: ``rollback_config_change``.

Configuration is versioned by name (kustomize's configMapGenerator/secretGenerator, Helm charts
that name ConfigMaps by content hash, or by hand: ``app-config-v7``): a change is a *new*
ConfigMap/Secret and a rollout of the Deployment's pod template pointing at it, and the old
version stays. So the last-known-good configuration is the one the Deployment's previous
ReplicaSet references. The action compares the pod template of the current revision with the
previous one and acts only when they differ in ConfigMap/Secret references alone (a rollout that
also changed an image, a command or resources is not a config change: it is refused, and
``rollback_deployment`` is the tool for it). It checks that every previous ConfigMap/Secret
still exists (a pruned one would leave the pods in CreateContainerConfigError), then points those
references back (JSON patch of exactly those fields, guarded by the read resourceVersion) and
waits for the rollout. The undo puts back the pod template it replaced.
"""

from __future__ import annotations

import copy
from typing import Any

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult, PreconditionFailed
from kubernaut.actions.kubernetes.guards import guarded
from kubernaut.actions.kubernetes.revisions import (
    deployment_revision,
    restore_deployment_template,
    revision_templates,
)
from kubernaut.actions.kubernetes.rollouts import rollout_wait
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Target

# Where a pod template names a ConfigMap/Secret: (container field, key, kind) per reference kind
_KEY_REFS = {"configMapKeyRef": "ConfigMap", "secretKeyRef": "Secret"}
_ENV_FROM = {"configMapRef": "ConfigMap", "secretRef": "Secret"}
_VOLUMES = {"configMap": ("ConfigMap", "name"), "secret": ("Secret", "secretName")}
_PROJECTED = {"configMap": "ConfigMap", "secret": "Secret"}


def config_references(template: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Every ConfigMap/Secret name in a pod template: JSON pointer -> (kind, name)."""
    refs: dict[str, tuple[str, str]] = {}
    spec = template.get("spec") or {}
    for group in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(group) or []):
            for j, env in enumerate(container.get("env") or []):
                for field, kind in _KEY_REFS.items():
                    ref = (env.get("valueFrom") or {}).get(field)
                    if ref and ref.get("name"):
                        refs[f"/spec/{group}/{i}/env/{j}/valueFrom/{field}/name"] = (kind, ref["name"])
            for j, env_from in enumerate(container.get("envFrom") or []):
                for field, kind in _ENV_FROM.items():
                    ref = env_from.get(field)
                    if ref and ref.get("name"):
                        refs[f"/spec/{group}/{i}/envFrom/{j}/{field}/name"] = (kind, ref["name"])
    for i, volume in enumerate(spec.get("volumes") or []):
        for field, (kind, name_field) in _VOLUMES.items():
            source = volume.get(field)
            if source and source.get(name_field):
                refs[f"/spec/volumes/{i}/{field}/{name_field}"] = (kind, source[name_field])
        for j, source in enumerate((volume.get("projected") or {}).get("sources") or []):
            for field, kind in _PROJECTED.items():
                ref = source.get(field)
                if ref and ref.get("name"):
                    refs[f"/spec/volumes/{i}/projected/sources/{j}/{field}/name"] = (kind, ref["name"])
    return refs


def _blanked(template: dict[str, Any], pointers: list[str]) -> dict[str, Any]:
    """The template with the names at ``pointers`` blanked (to compare everything else)."""
    copied = copy.deepcopy(template)
    for pointer in pointers:
        *parents, last = pointer.strip("/").split("/")
        node: Any = copied
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = ""
    return copied


def config_changes(current: dict[str, Any], previous: dict[str, Any]) -> list[dict[str, str]]:
    """The references that differ between two pod templates that differ in nothing else:
    ``[{path, kind, name (now), previous}]``. Raises ValueError naming what else differs."""
    now, before = config_references(current), config_references(previous)
    if set(now) != set(before) or any(now[p][0] != before[p][0] for p in now):
        raise ValueError("the ConfigMap/Secret references are not at the same places in both templates")
    rest_now, rest_before = _blanked(current, list(now)), _blanked(previous, list(before))
    if rest_now != rest_before:
        where = _first_difference(rest_now, rest_before)
        raise ValueError(f"more than ConfigMap/Secret references changed: {where}")
    return [
        {"path": p, "kind": now[p][0], "name": now[p][1], "previous": before[p][1]}
        for p in sorted(now)
        if now[p][1] != before[p][1]
    ]


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}/{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}/{i}")
    return path or "/"


class RollbackConfigChangeParams(ActionParams):
    namespace: NamespaceName
    deployment: ObjectName


@register
class RollbackConfigChange(Action[RollbackConfigChangeParams]):
    kind = "kubernetes"
    name = "rollback_config_change"
    Params = RollbackConfigChangeParams
    mutating = True
    summary = (
        "Point a Deployment's ConfigMap/Secret references back to its previous revision's versions "
        "when its last rollout changed nothing else; waits for the rollout."
    )
    changes = (
        "the pod template's ConfigMap/Secret names that differ from the previous ReplicaSet's "
        "(JSON patch, resourceVersion); waits"
    )
    undo_doc = "puts back the pod template that was replaced"
    dry_run_doc = "`dryRun=All` patch"

    def targets(self, ctx: ActionContext, params: RollbackConfigChangeParams) -> list[Target]:
        return [Target("Deployment", params.namespace, params.deployment)]

    def run(self, ctx: ActionContext, params: RollbackConfigChangeParams) -> ActionResult:
        from kubernaut.kube.errors import retry_on_conflict

        result = retry_on_conflict(lambda: self._attempt(ctx, params))
        result.wait = rollout_wait(ctx, "Deployment", params.namespace, params.deployment)
        return result

    def _attempt(self, ctx: ActionContext, params: RollbackConfigChangeParams) -> ActionResult:
        from kubernaut.kube.clients import JSON_PATCH, dry
        from kubernaut.kube.objects import find_object, patch_object, read_object

        what = f"deployment {params.namespace}/{params.deployment}"
        dep = read_object(ctx.api_client, "Deployment", params.namespace, params.deployment)
        current = dep["spec"]["template"]
        prior = ctx.prior_undo
        if prior is not None and current != prior["template"]:
            # An interrupted earlier attempt made the change already.
            return ActionResult(output={**prior["output"], "already_done": True}, undo=prior, changed=True)
        templates = revision_templates(ctx, dep)
        revision = deployment_revision(dep) or max(templates, default=0)
        previous = max((r for r in templates if r < revision), default=None)
        if previous is None:
            raise PreconditionFailed(
                f"{what}: no revision before {revision} to take the configuration from "
                f"(known revisions: {sorted(templates) or 'none'})"
            )
        try:
            changes = config_changes(current, templates[previous])
        except ValueError as exc:
            raise PreconditionFailed(
                f"{what}: revision {revision} is not a configuration change of revision {previous}: {exc} "
                "(roll the whole template back with rollback_deployment if that is wanted)"
            ) from exc
        output: dict[str, Any] = {
            "revision": revision,
            "to_revision": previous,
            "changes": changes,
            "dry_run": ctx.dry_run,
        }
        if not changes:
            return ActionResult(output={**output, "unchanged": True})
        missing = [
            f"{c['kind']} {params.namespace}/{c['previous']}"
            for c in {(c["kind"], c["previous"]): c for c in changes}.values()
            if find_object(ctx.api_client, c["kind"], params.namespace, c["previous"]) is None
        ]
        if missing:
            raise PreconditionFailed(
                f"{what}: the previous configuration is gone ({', '.join(missing)} no longer exists, "
                "pruned?): pointing the pods at it would leave them in CreateContainerConfigError"
            )
        undo = ctx.remember_prior({"template": current, "output": output})
        ops = [
            {"op": "replace", "path": f"/spec/template{c['path']}", "value": c["previous"]} for c in changes
        ]
        patch_object(
            ctx.api_client,
            "Deployment",
            params.namespace,
            params.deployment,
            guarded(dep["metadata"]["resourceVersion"], ops),
            JSON_PATCH,
            dry(ctx),
        )
        return ActionResult(output=output, undo=undo, changed=not ctx.dry_run)

    def undo(
        self, ctx: ActionContext, params: RollbackConfigChangeParams, record: dict[str, Any]
    ) -> dict[str, Any]:
        if not restore_deployment_template(ctx, params.namespace, params.deployment, record["template"]):
            return {"restored": False, "reason": "template already as before"}
        return {"restored": True, "revision": record["output"]["revision"]}


__all__ = ["RollbackConfigChange", "config_changes", "config_references"]
