"""Generic actions: a guarded patch of an allow-listed kind, and read-only diagnostics."""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import Field, model_validator

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult
from kubernaut.actions.k8s_workloads import guarded
from kubernaut.actions.registry import register
from kubernaut.kube import diagnostics, pointer
from kubernaut.kube.clients import JSON_PATCH, MERGE_PATCH, core, dry
from kubernaut.kube.errors import api_errors, retry_on_conflict
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.kube.objects import patch_object, read_object
from kubernaut.kube.waiting import wait_for
from kubernaut.kube.workloads import WorkloadKind, workload_status
from kubernaut.policy import Bounds, Target

# Not Secrets (their values would land in the undo journal and the step output), not Pods (mostly
# immutable), not Nodes or Namespaces (dedicated actions with their own policy checks).
PatchableKind = Literal[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ConfigMap",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "CronJob",
]
# Owned by the API server, garbage collector or controllers: a patch must never touch them.
FORBIDDEN: tuple[tuple[str, ...], ...] = (
    ("apiVersion",),
    ("kind",),
    ("status",),
    *(
        ("metadata", f)
        for f in (
            "name",
            "namespace",
            "generateName",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
            "finalizers",
            "managedFields",
            "selfLink",
        )
    ),
)
JSON_OPS = ("add", "remove", "replace", "test")
REPLICA_FIELDS = (("spec", "replicas"), ("spec", "minReplicas"), ("spec", "maxReplicas"))
Path = tuple[str, ...]


def _forbidden(path: Path) -> Path | None:
    """The protected field a change at ``path`` would touch (at, under, or containing it)."""
    for field in FORBIDDEN:
        n = min(len(field), len(path))
        if path[:n] == field[:n]:
            return field
    return None


def merge_leaves(patch: dict[str, Any], prefix: Path = ()) -> list[tuple[Path, Any]]:
    """What a JSON merge patch sets: a non-empty object recurses, anything else (null deletes,
    lists replace) is a leaf."""
    leaves: list[tuple[Path, Any]] = []
    for key, value in patch.items():
        if isinstance(value, dict) and value:
            leaves += merge_leaves(value, (*prefix, key))
        else:
            leaves.append(((*prefix, key), value))
    return leaves


def patch_writes(patch_type: str, patch: Any) -> list[tuple[Path, Any]]:
    """(path, value) of every change the patch makes (value None for a removal); ValueError for a
    malformed patch or one touching a protected field."""
    writes: list[tuple[Path, Any]] = []
    if patch_type == "merge":
        if not isinstance(patch, dict) or not patch:
            raise ValueError("a merge patch is a non-empty object")
        writes = merge_leaves(patch)
    else:
        if not isinstance(patch, list) or not patch:
            raise ValueError("a json patch is a non-empty list of operations")
        for op in patch:
            if (
                not isinstance(op, dict)
                or op.get("op") not in JSON_OPS
                or not isinstance(op.get("path"), str)
            ):
                raise ValueError(
                    f"unsupported json patch operation {op!r} (allowed ops: {', '.join(JSON_OPS)})"
                )
            if set(op) - {"op", "path", "value"} or (op["op"] != "remove" and "value" not in op):
                raise ValueError(f"json patch operation {op!r}: give op, path and (except remove) value")
            if op["op"] != "test":  # a test changes nothing (and may guard protected fields)
                writes.append((tuple(pointer.split(op["path"])), op.get("value")))
    for path, _ in writes:
        if not path:
            raise ValueError("a patch may not replace the whole object")
        field = _forbidden(path)
        if field is not None:
            raise ValueError(
                f"the patch touches {pointer.join(list(path))}: {'.'.join(field)} is never patched"
            )
    return writes


def recorded_paths(obj: dict[str, Any], writes: list[tuple[Path, Any]]) -> list[Path]:
    """The paths whose prior values restore the object: an array element's whole array (indices
    shift on insert and remove), and no path inside another recorded one."""
    paths: set[Path] = set()
    for path, _ in writes:
        if path[-1] == "-" or isinstance(pointer.lookup(obj, list(path[:-1])), list):
            path = path[:-1]
        paths.add(path)
    return sorted(p for p in paths if not any(p[: len(q)] == q and p != q for q in paths))


def values_at(obj: dict[str, Any], paths: list[Path]) -> list[dict[str, Any]]:
    entries = []
    for path in paths:
        value = pointer.lookup(obj, list(path))
        entry: dict[str, Any] = {"path": pointer.join(list(path)), "existed": value is not pointer.MISSING}
        if value is not pointer.MISSING:
            entry["value"] = value
        entries.append(entry)
    return entries


def restore_ops(obj: dict[str, Any], entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The JSON patch putting the recorded values back; empty when they already are."""
    ops: list[dict[str, Any]] = []
    for entry in entries:
        now = pointer.lookup(obj, pointer.split(entry["path"]))
        if entry["existed"] and now is pointer.MISSING:
            ops.append({"op": "add", "path": entry["path"], "value": entry["value"]})
        elif entry["existed"] and now != entry["value"]:
            ops.append({"op": "replace", "path": entry["path"], "value": entry["value"]})
        elif not entry["existed"] and now is not pointer.MISSING:
            ops.append({"op": "remove", "path": entry["path"]})
    return ops


# --- patch_resource ---------------------------------------------------------------------------


class PatchResourceParams(ActionParams):
    kind: PatchableKind
    namespace: NamespaceName
    name: ObjectName
    patch_type: Literal["merge", "json"] = "merge"
    patch: dict[str, Any] | list[dict[str, Any]] = Field(
        description="JSON merge patch (object) or JSON patch (list of add/remove/replace/test)"
    )

    @model_validator(mode="after")
    def _guarded(self) -> PatchResourceParams:
        patch_writes(self.patch_type, self.patch)
        return self


@register
class PatchResource(Action[PatchResourceParams]):
    kind = "kubernetes"
    name = "patch_resource"
    Params = PatchResourceParams
    mutating = True
    summary = (
        "Patch an allow-listed object (merge or JSON patch); metadata owned by the API and status refused."
    )
    changes = (
        "the patched paths of a Deployment, StatefulSet, DaemonSet, ConfigMap, Service, HPA, PDB or "
        "CronJob (resourceVersion); never ownerReferences, finalizers, server metadata or status"
    )
    undo_doc = "restores the prior value (or absence) of exactly the patched paths with a JSON patch"
    dry_run_doc = "`dryRun=All` patch (the output shows the values it would set)"

    def targets(self, ctx: ActionContext, params: PatchResourceParams) -> list[Target]:
        return [Target(params.kind, params.namespace, params.name)]

    def bounds(self, ctx: ActionContext, params: PatchResourceParams) -> Bounds:
        # A generic patch must not get around the policy's replica limit.
        counts = []
        for path, value in patch_writes(params.patch_type, params.patch):
            for replica_field in REPLICA_FIELDS:
                if replica_field[: len(path)] == path:
                    found = pointer.lookup(value, list(replica_field[len(path) :]))
                    if isinstance(found, int) and not isinstance(found, bool):
                        counts.append(found)
        return Bounds(replicas=max(counts) if counts else None)

    def _what(self, params: PatchResourceParams) -> str:
        return f"{params.kind.lower()} {params.namespace}/{params.name}"

    def run(self, ctx: ActionContext, params: PatchResourceParams) -> ActionResult:
        writes = patch_writes(params.patch_type, params.patch)

        def attempt() -> ActionResult:
            obj = read_object(ctx.api_client, params.kind, params.namespace, params.name)
            entries = values_at(obj, recorded_paths(obj, writes))
            output: dict[str, Any] = {"object": self._what(params), "patch_type": params.patch_type}
            prior = ctx.prior_undo
            if prior is not None and restore_ops(obj, prior["paths"]):
                # An interrupted attempt patched it already: applying it twice could, e.g., append twice.
                after = values_at(obj, [tuple(pointer.split(e["path"])) for e in prior["paths"]])
                output.update(before=prior["paths"], after=after, already_done=True)
                return ActionResult(output=output, undo=prior, changed=True)
            undo = ctx.remember_prior({"paths": entries})
            rv = obj["metadata"]["resourceVersion"]
            body: Any
            if isinstance(params.patch, dict):  # a merge patch (the validator matched shape and type)
                meta = {**(params.patch.get("metadata") or {}), "resourceVersion": rv}
                body, content_type = {**params.patch, "metadata": meta}, MERGE_PATCH
            else:
                body, content_type = guarded(rv, params.patch), JSON_PATCH
            result = patch_object(
                ctx.api_client, params.kind, params.namespace, params.name, body, content_type, dry(ctx)
            )
            after = values_at(result, [tuple(pointer.split(e["path"])) for e in undo["paths"]])
            output.update(before=undo["paths"], after=after, dry_run=ctx.dry_run)
            return ActionResult(output=output, undo=undo, changed=after != undo["paths"] and not ctx.dry_run)

        return retry_on_conflict(attempt)

    def verify(self, ctx: ActionContext, params: PatchResourceParams, result: ActionResult) -> None:
        after: list[dict[str, Any]] = result.output["after"]

        def check() -> tuple[bool, list[dict[str, Any]]]:
            obj = read_object(ctx.api_client, params.kind, params.namespace, params.name)
            ops = restore_ops(obj, after)  # what differs from the values the patch set
            return not ops, ops

        wait_for(ctx, check, what=f"patch of {self._what(params)}")

    def undo(self, ctx: ActionContext, params: PatchResourceParams, record: dict[str, Any]) -> dict[str, Any]:
        def attempt() -> dict[str, Any]:
            obj = read_object(ctx.api_client, params.kind, params.namespace, params.name)
            ops = restore_ops(obj, record["paths"])
            if not ops:
                return {"restored": False, "reason": "patched paths already as before"}
            body = guarded(obj["metadata"]["resourceVersion"], ops)
            patch_object(
                ctx.api_client, params.kind, params.namespace, params.name, body, JSON_PATCH, dry(ctx)
            )
            return {"restored": True, "paths": [op["path"] for op in ops]}

        return retry_on_conflict(attempt)


# --- collect_diagnostics ----------------------------------------------------------------------

DiagnosableKind = Literal[
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "Node",
    "Service",
    "PersistentVolumeClaim",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "CronJob",
]
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


class CollectDiagnosticsParams(ActionParams):
    namespace: NamespaceName | None = Field(default=None, description="Required except for a Node")
    kind: DiagnosableKind
    name: ObjectName
    tail_lines: int = Field(default=20, ge=1, le=200, description="Log lines per container")
    max_events: int = Field(default=50, ge=1, le=200, description="Newest events kept")
    max_pods: int = Field(default=5, ge=1, le=20, description="Pods whose logs are read (not-ready first)")

    @model_validator(mode="after")
    def _namespace(self) -> CollectDiagnosticsParams:
        if self.kind != "Node" and self.namespace is None:
            raise ValueError(f"a {self.kind} needs a namespace")
        return self


@register
class CollectDiagnostics(Action[CollectDiagnosticsParams]):
    kind = "kubernetes"
    name = "collect_diagnostics"
    Params = CollectDiagnosticsParams
    summary = (
        "Gather an object's events, a describe-like status and its pods' last log lines (bounded output)."
    )

    def run(self, ctx: ActionContext, params: CollectDiagnosticsParams) -> ActionResult:
        namespace = None if params.kind == "Node" else params.namespace
        obj = read_object(ctx.api_client, params.kind, namespace, params.name)
        events, total = diagnostics.object_events(ctx, params.kind, namespace, params.name, params.max_events)
        logs = diagnostics.LogCollector(ctx, params.tail_lines)
        output: dict[str, Any] = {
            "object": {"kind": params.kind, "namespace": namespace, "name": params.name},
            "events": events,
            "events_total": total,
        }
        if params.kind == "Node":
            output["status"] = diagnostics.node_status(obj)
            output["pods"] = diagnostics.pods_on_node(ctx, params.name, 20)
            logs.notes.append("logs are per pod: collect the diagnostics of a pod listed here")
        else:
            assert namespace is not None
            pods = self._pods(ctx, namespace, params, obj)
            output["status"] = self._status(ctx, namespace, params, obj)
            output["pods"] = [diagnostics.pod_details(p) for p in pods]
            for pod in pods:
                logs.collect(pod)
        output.update(logs=logs.logs, notes=logs.notes, truncated=logs.truncated)
        return ActionResult(output=output)

    @staticmethod
    def _pods(
        ctx: ActionContext, namespace: str, params: CollectDiagnosticsParams, obj: dict[str, Any]
    ) -> list[Any]:
        if params.kind == "Pod":
            with api_errors(f"pod {namespace}/{params.name}"):
                return [core(ctx).read_namespaced_pod(params.name, namespace)]
        if params.kind in (*WORKLOADS, "ReplicaSet", "Job"):
            return diagnostics.selected_pods(ctx, namespace, obj, params.max_pods)
        return []

    @staticmethod
    def _status(
        ctx: ActionContext, namespace: str, params: CollectDiagnosticsParams, obj: dict[str, Any]
    ) -> dict[str, Any]:
        if params.kind == "Pod":
            return {
                "phase": (obj.get("status") or {}).get("phase"),
                "conditions": diagnostics.conditions(obj),
            }
        if params.kind in WORKLOADS:
            containers = obj["spec"]["template"]["spec"].get("containers") or []
            return {
                **workload_status(ctx, cast(WorkloadKind, params.kind), namespace, params.name),
                "images": {c["name"]: c.get("image") for c in containers},
                "conditions": diagnostics.conditions(obj),
            }
        return diagnostics.generic_status(obj)


__all__ = ["CollectDiagnostics", "PatchResource"]
