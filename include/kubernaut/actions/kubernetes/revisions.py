"""ControllerRevision rollback of a StatefulSet or DaemonSet, as ``kubectl rollout undo`` does.

``rollback_set`` finds the set's ControllerRevisions (its selector, controlled by it), takes the
previous one (or ``to_revision``) and puts that revision's pod template back as a JSON patch
guarded by the read resourceVersion; ``unrollback_set`` is its undo. Used by
``rollback_statefulset`` and ``rollback_daemonset``.

A Deployment's revisions are its ReplicaSets instead (``revision_templates``,
``replace_template``): used by ``rollback_deployment`` and ``rollback_config_change``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from kubernaut.actions.base import ActionContext, ActionResult, PreconditionFailed
from kubernaut.actions.kubernetes.guards import guarded

SetKind = Literal["StatefulSet", "DaemonSet"]


def controller_revisions(ctx: ActionContext, obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The set's ControllerRevisions (matched by its selector, controlled by it), by revision."""
    from kubernaut.kube.clients import apps
    from kubernaut.kube.errors import api_errors
    from kubernaut.kube.pods import selector_string

    meta = obj["metadata"]
    selector = selector_string((obj["spec"].get("selector") or {}).get("matchLabels"))
    with api_errors(f"controllerrevisions of {obj['kind'].lower()} {meta['namespace']}/{meta['name']}"):
        items = (
            apps(ctx).list_namespaced_controller_revision(meta["namespace"], label_selector=selector).items
        )
    found = []
    for item in items:
        data = ctx.api_client.sanitize_for_serialization(item)
        owners = data["metadata"].get("ownerReferences") or []
        if any(o.get("controller") and o.get("uid") == meta["uid"] for o in owners):
            found.append(data)
    return sorted(found, key=lambda r: int(r.get("revision") or 0))


def revision_template(revision: dict[str, Any]) -> dict[str, Any]:
    """The pod template a ControllerRevision restores (its data is ``{"spec": {"template": ...}}``)."""
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template"))
    if not isinstance(template, dict):
        name = revision["metadata"]["name"]
        raise PreconditionFailed(f"controllerrevision {name} holds no pod template (data.spec.template)")
    template.pop("$patch", None)
    return template


def _replace_template(
    ctx: ActionContext,
    kind: SetKind,
    namespace: str,
    name: str,
    resource_version: str,
    template: dict[str, Any],
) -> None:
    from kubernaut.kube.clients import JSON_PATCH, dry
    from kubernaut.kube.objects import patch_object

    ops = guarded(resource_version, [{"op": "replace", "path": "/spec/template", "value": template}])
    patch_object(ctx.api_client, kind, namespace, name, ops, JSON_PATCH, dry(ctx))


def _pick(
    kind: SetKind, namespace: str, name: str, revisions: list[dict[str, Any]], to_revision: int | None
) -> dict[str, Any]:
    """kubectl's choice: ``to_revision``, or the one before the latest."""
    numbers = [int(r.get("revision") or 0) for r in revisions]
    what = f"{kind.lower()} {namespace}/{name}"
    if to_revision is not None:
        found = next((r for r in revisions if int(r.get("revision") or 0) == to_revision), None)
        if found is None:
            raise PreconditionFailed(
                f"{what}: no revision {to_revision} (known revisions: {numbers or 'none'})"
            )
        return found
    if len(revisions) < 2:
        raise PreconditionFailed(
            f"{what}: no previous revision to roll back to (known revisions: {numbers or 'none'})"
        )
    return revisions[-2]


def rollout_complete(obj: dict[str, Any]) -> bool:
    """Whether the set's controller has rolled its current template out to every pod."""
    status = obj.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(obj["metadata"].get("generation") or 0):
        return False
    if obj["kind"] == "StatefulSet":
        replicas = int(obj["spec"].get("replicas", 1))
        return bool(
            status.get("currentRevision") == status.get("updateRevision")
            and int(status.get("updatedReplicas") or 0) == replicas
            and int(status.get("readyReplicas") or 0) == replicas
        )
    desired = int(status.get("desiredNumberScheduled") or 0)
    return (
        int(status.get("updatedNumberScheduled") or 0) == desired
        and int(status.get("numberAvailable") or 0) == desired
    )


def rollback_set(
    ctx: ActionContext,
    kind: SetKind,
    namespace: str,
    name: str,
    to_revision: int | None,
    only_if_stuck: bool = False,
) -> ActionResult:
    """Put back an earlier revision's template (conflicts re-read and retried)."""
    from kubernaut.kube.errors import retry_on_conflict
    from kubernaut.kube.objects import read_object

    def attempt() -> ActionResult:
        obj = read_object(ctx.api_client, kind, namespace, name)
        current = obj["spec"]["template"]
        prior = ctx.prior_undo
        if prior is not None and current != prior["template"]:
            output = {
                "revision": prior["revision"],
                "to_revision": prior["to_revision"],
                "already_done": True,
            }
            return ActionResult(
                output={**output, "to_revision_name": prior["to_revision_name"]}, undo=prior, changed=True
            )
        if only_if_stuck and rollout_complete(obj):
            # Rolled out meanwhile: going back would undo a good rollout.
            return ActionResult(
                output={"unchanged": True, "reason": "rollout complete", "dry_run": ctx.dry_run}
            )
        revisions = controller_revisions(ctx, obj)
        target = _pick(kind, namespace, name, revisions, to_revision)
        wanted = revision_template(target)
        output = {
            "revision": int(revisions[-1].get("revision") or 0) if revisions else 0,
            "to_revision": int(target.get("revision") or 0),
            "to_revision_name": target["metadata"]["name"],
            "dry_run": ctx.dry_run,
        }
        if wanted == current:  # kubectl: "skipped rollback (current template already matches revision N)"
            return ActionResult(output={**output, "unchanged": True})
        undo = ctx.remember_prior(
            {"template": current, **{k: output[k] for k in ("revision", "to_revision", "to_revision_name")}}
        )
        _replace_template(ctx, kind, namespace, name, obj["metadata"]["resourceVersion"], wanted)
        return ActionResult(output=output, undo=undo, changed=not ctx.dry_run)

    return retry_on_conflict(attempt)


def unrollback_set(
    ctx: ActionContext, kind: SetKind, namespace: str, name: str, record: dict[str, Any]
) -> dict[str, Any]:
    """Undo of a rollback: the template that was replaced, again."""
    from kubernaut.kube.errors import retry_on_conflict
    from kubernaut.kube.objects import read_object

    def attempt() -> dict[str, Any]:
        obj = read_object(ctx.api_client, kind, namespace, name)
        if obj["spec"]["template"] == record["template"]:
            return {"restored": False, "reason": "template already as before"}
        _replace_template(ctx, kind, namespace, name, obj["metadata"]["resourceVersion"], record["template"])
        return {"restored": True, "revision": record["revision"]}

    return retry_on_conflict(attempt)


# --- Deployments: revisions are ReplicaSets ---------------------------------------------------

REVISION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"


def deployment_revision(obj: dict[str, Any]) -> int:
    """The `deployment.kubernetes.io/revision` annotation of a Deployment or ReplicaSet (0: none)."""
    try:
        return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def revision_templates(ctx: ActionContext, dep: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Pod templates of the deployment's ReplicaSets by revision, `pod-template-hash` removed."""
    from kubernaut.kube.clients import apps
    from kubernaut.kube.errors import api_errors
    from kubernaut.kube.pods import selector_string

    namespace, uid = dep["metadata"]["namespace"], dep["metadata"]["uid"]
    selector = selector_string((dep["spec"].get("selector") or {}).get("matchLabels"))
    with api_errors(f"replicasets of deployment {namespace}/{dep['metadata']['name']}"):
        items = apps(ctx).list_namespaced_replica_set(namespace, label_selector=selector).items
    templates: dict[int, dict[str, Any]] = {}
    for rs in items:
        data = ctx.api_client.sanitize_for_serialization(rs)
        owners = data["metadata"].get("ownerReferences") or []
        if not any(o.get("controller") and o.get("uid") == uid for o in owners):
            continue
        template = copy.deepcopy(data["spec"]["template"])
        labels = (template.get("metadata") or {}).get("labels") or {}
        labels.pop(POD_TEMPLATE_HASH, None)
        templates[deployment_revision(data)] = template
    return templates


def replace_template(
    ctx: ActionContext, namespace: str, name: str, resource_version: str, template: dict[str, Any]
) -> None:
    from kubernaut.kube.clients import JSON_PATCH, dry
    from kubernaut.kube.objects import patch_object

    ops = guarded(resource_version, [{"op": "replace", "path": "/spec/template", "value": template}])
    patch_object(ctx.api_client, "Deployment", namespace, name, ops, JSON_PATCH, dry(ctx))


def restore_deployment_template(
    ctx: ActionContext, namespace: str, name: str, template: dict[str, Any]
) -> bool:
    """Undo of a rollback: put the pod template recorded before it back, unless it already is
    (retried on a write conflict). True when it was put back."""
    from kubernaut.kube.errors import retry_on_conflict
    from kubernaut.kube.objects import read_object

    def attempt() -> bool:
        dep = read_object(ctx.api_client, "Deployment", namespace, name)
        if dep["spec"]["template"] == template:
            return False
        replace_template(ctx, namespace, name, dep["metadata"]["resourceVersion"], template)
        return True

    return retry_on_conflict(attempt)


__all__ = [
    "REVISION",
    "controller_revisions",
    "deployment_revision",
    "replace_template",
    "restore_deployment_template",
    "revision_template",
    "revision_templates",
    "rollback_set",
    "unrollback_set",
]
