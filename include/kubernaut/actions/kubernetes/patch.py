"""``patch_resource``: a guarded patch of an allow-listed kind, with the patched paths recorded
for undo."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionParams,
    ActionResult,
    NotRestorable,
)
from kubernaut.actions.kubernetes.guards import guarded
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
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
PatchType = Literal["strategic", "merge", "json"]


@dataclass(frozen=True)
class Select:
    """A list item picked by its merge key, as a strategic merge patch addresses it:
    ``containers`` + ``Select("name", "web")`` is the container named web, wherever it is."""

    key: str
    value: Any

    def __str__(self) -> str:
        return f"[{self.key}={self.value}]"


Segment = str | Select
Path = tuple[Segment, ...]


def display(path: Path) -> str:
    """A path for people: a JSON pointer, with ``[name=web]`` for an item picked by merge key."""
    from kubernaut.kube import pointer

    return "".join("/" + (str(s) if isinstance(s, Select) else pointer.escape(s)) for s in path)


def _forbidden(path: Path) -> tuple[str, ...] | None:
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


def strategic_leaves(
    patch: dict[str, Any], type_name: str | None, prefix: Path = ()
) -> list[tuple[Path, Any]]:
    """What a strategic merge patch changes, by the API's merge keys (kube.patch_strategy): an item
    of a merge list is addressed by its key, a map or list the patch replaces (``$patch``,
    ``$retainKeys``, patchStrategy replace, an atomic list) is one leaf."""
    from kubernaut.kube.patch_strategy import (
        DELETE_FROM_PRIMITIVE_LIST,
        DIRECTIVE,
        RETAIN_KEYS,
        SET_ELEMENT_ORDER,
        field_meta,
    )

    leaves: list[tuple[Path, Any]] = []
    for key, value in patch.items():
        path = (*prefix, key)
        if key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            field = key.partition("/")[2]
            if not field:
                raise ValueError(f"{display(prefix)}: {key!r} must name a list: {key}/<field>")
            leaves.append(((*prefix, field), None))  # the list's content or order changes
            continue
        if key.startswith("$"):
            raise ValueError(f"{display(path)}: unknown strategic merge directive {key!r}")
        meta = field_meta(type_name, key)
        if isinstance(value, dict):
            directive = value.get(DIRECTIVE)
            if directive is not None and directive not in ("replace", "delete"):
                raise ValueError(
                    f"{display(path)}: $patch in an object is replace or delete, not {directive!r}"
                )
            if directive is not None or RETAIN_KEYS in value or meta.replace or not value:
                leaves.append((path, value))
            else:
                leaves += strategic_leaves(value, meta.type, path)
        elif isinstance(value, list) and meta.merge_key:
            leaves += _merge_list_leaves(value, meta.merge_key, meta.type, path)
        else:
            leaves.append((path, value))
    return leaves


def _merge_list_leaves(
    items: list[Any], merge_key: str, type_name: str | None, path: Path
) -> list[tuple[Path, Any]]:
    from kubernaut.kube.patch_strategy import DIRECTIVE, RETAIN_KEYS

    if any(isinstance(item, dict) and item.get(DIRECTIVE) == "replace" for item in items):
        return [(path, items)]  # the patch's items become the whole list
    leaves: list[tuple[Path, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or merge_key not in item:
            raise ValueError(
                f"{display(path)}[{index}]: each item needs its merge key {merge_key!r} "
                f"(a strategic merge patch finds the item to change by it), got {item!r}"
            )
        if not isinstance(item[merge_key], str | int | float | bool):
            raise ValueError(f"{display(path)}[{index}]: the merge key {merge_key!r} must be a scalar")
        item_path = (*path, Select(merge_key, item[merge_key]))
        directive = item.get(DIRECTIVE)
        if directive == "delete":
            leaves.append((item_path, None))
        elif directive is not None:
            raise ValueError(
                f"{display(item_path)}: $patch in a list item is delete or replace, not {directive!r}"
            )
        elif RETAIN_KEYS in item or len(item) == 1:
            leaves.append((item_path, item))
        else:
            rest = {k: v for k, v in item.items() if k != merge_key}
            leaves += strategic_leaves(rest, type_name, item_path)
    return leaves


def patch_writes(patch_type: str, patch: Any, kind: str | None = None) -> list[tuple[Path, Any]]:
    """(path, value) of every change the patch makes (value None for a removal); ValueError for a
    malformed patch or one touching a protected field."""
    from kubernaut.kube import pointer
    from kubernaut.kube.patch_strategy import DIRECTIVE, RETAIN_KEYS

    writes: list[tuple[Path, Any]] = []
    if patch_type in ("merge", "strategic"):
        if not isinstance(patch, dict) or not patch:
            raise ValueError(f"a {patch_type} merge patch is a non-empty object")
        if patch_type == "merge":
            writes = merge_leaves(patch)
        else:
            if DIRECTIVE in patch or RETAIN_KEYS in patch:
                raise ValueError("a patch may not replace the whole object")
            writes = strategic_leaves(patch, kind)
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
            raise ValueError(f"the patch touches {display(path)}: {'.'.join(field)} is never patched")
    return writes


# --- reading and restoring paths (with merge-key selectors) -----------------------------------


def lookup(doc: Any, path: Path) -> Any:
    """The value at ``path``, or pointer.MISSING."""
    from kubernaut.kube import pointer

    current = doc
    for segment in path:
        if isinstance(segment, Select):
            if not isinstance(current, list):
                return pointer.MISSING
            current = next(
                (i for i in current if isinstance(i, dict) and i.get(segment.key) == segment.value),
                pointer.MISSING,
            )
            if current is pointer.MISSING:
                return current
        else:
            current = pointer.lookup(current, [segment])
            if current is pointer.MISSING:
                return current
    return current


def concrete(doc: Any, path: Path) -> list[str] | None:
    """The JSON pointer parts of ``path`` in ``doc`` now (merge-key items by their index), or None
    when an item on the way is missing."""
    from kubernaut.kube import pointer

    parts: list[str] = []
    current = doc
    for segment in path:
        if isinstance(segment, Select):
            if not isinstance(current, list):
                return None
            index = next(
                (
                    n
                    for n, i in enumerate(current)
                    if isinstance(i, dict) and i.get(segment.key) == segment.value
                ),
                None,
            )
            if index is None:
                return None
            parts.append(str(index))
            current = current[index]
        else:
            parts.append(segment)
            current = pointer.lookup(current, [segment])
    return parts


def _selections(path: Path) -> list[tuple[Path, Select]]:
    """Each merge list the path goes through, with the item it picks there."""
    return [(path[:n], s) for n, s in enumerate(path) if isinstance(s, Select)]


def recorded_paths(obj: dict[str, Any], writes: list[tuple[Path, Any]]) -> list[Path]:
    """The paths whose prior values restore the object: an array element's whole array (indices
    shift on insert and remove), a merge list whose patched items the strategic merge would
    reorder as a whole, a path below a missing one as the first missing one, and no path inside
    another recorded one."""
    from kubernaut.kube import pointer

    paths: list[Path] = []
    for path, _ in writes:
        last = path[-1]
        if isinstance(last, str) and (last == "-" or isinstance(lookup(obj, path[:-1]), list)):
            path = path[:-1]
        paths.append(path)
    # Several existing items of one merge list patched in another relative order than the live
    # one: the server reorders the list (patch order wins), so the whole list is the prior state.
    selected: dict[Path, list[Select]] = {}
    for path, value in writes:
        removed = isinstance(path[-1], Select) and value is None  # `$patch: delete`: out of the order
        for list_path, select in _selections(path[:-1] if removed else path):
            if select not in selected.setdefault(list_path, []):
                selected[list_path].append(select)
    for list_path, selectors in selected.items():
        live = lookup(obj, list_path)
        if not isinstance(live, list):
            continue
        positions = [p for p in (_position(live, s) for s in selectors) if p is not None]
        if positions != sorted(positions):
            paths.append(list_path)
    truncated: list[Path] = []
    for path in paths:
        cut = next((n for n in range(1, len(path) + 1) if lookup(obj, path[:n]) is pointer.MISSING), None)
        path = path if cut is None else path[:cut]
        if path not in truncated:
            truncated.append(path)
    nested = [p for p in truncated if any(p[: len(q)] == q and p != q for q in truncated)]
    return sorted((p for p in truncated if p not in nested), key=lambda p: [str(s) for s in p])


def _position(items: list[Any], select: Select) -> int | None:
    return next(
        (n for n, i in enumerate(items) if isinstance(i, dict) and i.get(select.key) == select.value), None
    )


def encode(path: Path) -> list[Any]:
    return [{s.key: s.value} if isinstance(s, Select) else s for s in path]


def decode(entry: dict[str, Any]) -> Path:
    """An undo entry's path: its ``segments`` (merge-key items as one-key objects), else its
    JSON pointer (records of merge and JSON patches, and of earlier versions)."""
    from kubernaut.kube import pointer

    if "segments" not in entry:
        return tuple(pointer.split(entry["path"]))
    return tuple(Select(*next(iter(s.items()))) if isinstance(s, dict) else str(s) for s in entry["segments"])


def values_at(obj: dict[str, Any], paths: list[Path]) -> list[dict[str, Any]]:
    from kubernaut.kube import pointer

    entries = []
    for path in paths:
        value = lookup(obj, path)
        entry: dict[str, Any] = {"path": display(path), "existed": value is not pointer.MISSING}
        if any(isinstance(s, Select) for s in path):
            entry["segments"] = encode(path)
            if isinstance(path[-1], Select):
                parent = lookup(obj, path[:-1])
                position = _position(parent, path[-1]) if isinstance(parent, list) else None
                if position is not None:
                    entry["index"] = position  # where a removed item goes back
        if value is not pointer.MISSING:
            entry["value"] = value
        entries.append(entry)
    return entries


def mismatches(obj: dict[str, Any], entries: list[dict[str, Any]]) -> list[str]:
    """The paths whose value in ``obj`` is not the recorded one (or whose absence is not)."""
    from kubernaut.kube import pointer

    differ = []
    for entry in entries:
        now = lookup(obj, decode(entry))
        if entry["existed"] != (now is not pointer.MISSING) or (entry["existed"] and now != entry["value"]):
            differ.append(entry["path"])
    return differ


def _apply(doc: Any, op: dict[str, Any]) -> None:
    """One add/replace/remove of a restore plan, in memory (so later ops see its effect)."""
    from kubernaut.kube import pointer

    *parents, last = pointer.split(op["path"])
    parent = pointer.lookup(doc, parents)
    if isinstance(parent, list):
        if op["op"] == "remove":
            del parent[int(last)]
        elif op["op"] == "add":
            parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(op["value"]))
        else:
            parent[int(last)] = copy.deepcopy(op["value"])
    elif op["op"] == "remove":
        del parent[last]
    else:
        parent[last] = copy.deepcopy(op["value"])


def restore_plan(
    obj: dict[str, Any], entries: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON patch putting the recorded values back (empty when they already are), and the
    paths it cannot reach (an item on the way is gone). Each op is computed after the ones
    before it, so indices stay right when several touch one list."""
    from kubernaut.kube import pointer

    doc = copy.deepcopy(obj)
    ops: list[dict[str, Any]] = []
    unreachable: list[str] = []
    for entry in entries:
        path = decode(entry)
        now = lookup(doc, path)
        op: dict[str, Any] | None = None
        if entry["existed"] and now is pointer.MISSING:
            parent = concrete(doc, path[:-1])
            container = lookup(doc, path[:-1])
            if parent is None or container is pointer.MISSING:
                unreachable.append(entry["path"])
                continue
            last = path[-1]
            if isinstance(last, Select):  # a removed item goes back where it was
                if not isinstance(container, list):
                    unreachable.append(entry["path"])
                    continue
                last = str(min(int(entry.get("index", len(container))), len(container)))
            op = {"op": "add", "path": pointer.join([*parent, last]), "value": entry["value"]}
        elif (entry["existed"] and now != entry["value"]) or (
            not entry["existed"] and now is not pointer.MISSING
        ):
            parts = concrete(doc, path)
            assert parts is not None  # the value was found, so every item on the way was too
            if entry["existed"]:
                op = {"op": "replace", "path": pointer.join(parts), "value": entry["value"]}
            else:
                op = {"op": "remove", "path": pointer.join(parts)}
        if op is not None:
            _apply(doc, op)
            ops.append(op)
    return ops, unreachable


# --- patch_resource ---------------------------------------------------------------------------


class PatchResourceParams(ActionParams):
    kind: PatchableKind
    namespace: NamespaceName
    name: ObjectName
    patch_type: PatchType = Field(
        default="strategic",
        description="strategic (kubectl patch's default: list items merged by their API merge keys), "
        "merge (RFC 7386: lists replaced whole) or json (RFC 6902)",
    )
    patch: dict[str, Any] | list[dict[str, Any]] = Field(
        description="Strategic or JSON merge patch (object) or JSON patch (list of add/remove/replace/test)"
    )

    @model_validator(mode="after")
    def _guarded(self) -> PatchResourceParams:
        patch_writes(self.patch_type, self.patch, self.kind)
        return self


@register
class PatchResource(Action[PatchResourceParams]):
    kind = "kubernetes"
    name = "patch_resource"
    Params = PatchResourceParams
    mutating = True
    summary = (
        "Patch an allow-listed object (strategic merge, merge or JSON patch); "
        "metadata owned by the API and status refused."
    )
    changes = (
        "the patched paths of a Deployment, StatefulSet, DaemonSet, ConfigMap, Service, HPA, PDB or "
        "CronJob (strategic merge by default: containers, ports, env ... merged by their keys; "
        "resourceVersion); never ownerReferences, finalizers, server metadata or status"
    )
    undo_doc = (
        "restores the prior value (or absence) of exactly the patched paths (list items found by "
        "their merge key) with a JSON patch"
    )
    dry_run_doc = "`dryRun=All` patch (the output shows the values it would set)"

    def targets(self, ctx: ActionContext, params: PatchResourceParams) -> list[Target]:
        return [Target(params.kind, params.namespace, params.name)]

    def bounds(self, ctx: ActionContext, params: PatchResourceParams) -> Bounds:
        # A generic patch must not get around the policy's replica limit.
        from kubernaut.kube import pointer

        counts = []
        for path, value in patch_writes(params.patch_type, params.patch, params.kind):
            for replica_field in REPLICA_FIELDS:
                if replica_field[: len(path)] == path:
                    found = pointer.lookup(value, list(replica_field[len(path) :]))
                    if isinstance(found, int) and not isinstance(found, bool):
                        counts.append(found)
        return Bounds(replicas=max(counts) if counts else None)

    def _what(self, params: PatchResourceParams) -> str:
        return f"{params.kind.lower()} {params.namespace}/{params.name}"

    def run(self, ctx: ActionContext, params: PatchResourceParams) -> ActionResult:
        from kubernaut.kube.clients import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, dry
        from kubernaut.kube.errors import retry_on_conflict
        from kubernaut.kube.objects import patch_object, read_object

        writes = patch_writes(params.patch_type, params.patch, params.kind)

        def attempt() -> ActionResult:
            obj = read_object(ctx.api_client, params.kind, params.namespace, params.name)
            entries = values_at(obj, recorded_paths(obj, writes))
            output: dict[str, Any] = {"object": self._what(params), "patch_type": params.patch_type}
            prior = ctx.prior_undo
            if prior is not None and mismatches(obj, prior["paths"]):
                # An interrupted attempt patched it already: applying it twice could, e.g., append twice.
                after = values_at(obj, [decode(e) for e in prior["paths"]])
                output.update(before=prior["paths"], after=after, already_done=True)
                return ActionResult(output=output, undo=prior, changed=True)
            undo = ctx.remember_prior({"paths": entries})
            rv = obj["metadata"]["resourceVersion"]
            body: Any
            if isinstance(params.patch, dict):  # a merge patch (the validator matched shape and type)
                meta = {**(params.patch.get("metadata") or {}), "resourceVersion": rv}
                body = {**params.patch, "metadata": meta}
                content_type = STRATEGIC_MERGE_PATCH if params.patch_type == "strategic" else MERGE_PATCH
            else:
                body, content_type = guarded(rv, params.patch), JSON_PATCH
            result = patch_object(
                ctx.api_client, params.kind, params.namespace, params.name, body, content_type, dry(ctx)
            )
            after = values_at(result, [decode(e) for e in undo["paths"]])
            output.update(before=undo["paths"], after=after, dry_run=ctx.dry_run)
            return ActionResult(output=output, undo=undo, changed=after != undo["paths"] and not ctx.dry_run)

        return retry_on_conflict(attempt)

    def verify(self, ctx: ActionContext, params: PatchResourceParams, result: ActionResult) -> None:
        from kubernaut.kube.objects import read_object
        from kubernaut.kube.waiting import wait_for

        after: list[dict[str, Any]] = result.output["after"]

        def check() -> tuple[bool, list[str]]:
            obj = read_object(ctx.api_client, params.kind, params.namespace, params.name)
            differ = mismatches(obj, after)  # what differs from the values the patch set
            return not differ, differ

        wait_for(ctx, check, what=f"patch of {self._what(params)}")

    def undo(self, ctx: ActionContext, params: PatchResourceParams, record: dict[str, Any]) -> dict[str, Any]:
        from kubernaut.kube.clients import JSON_PATCH, dry
        from kubernaut.kube.errors import retry_on_conflict
        from kubernaut.kube.objects import patch_object, read_object

        def attempt() -> dict[str, Any]:
            obj = read_object(ctx.api_client, params.kind, params.namespace, params.name)
            ops, unreachable = restore_plan(obj, record["paths"])
            if ops:
                body = guarded(obj["metadata"]["resourceVersion"], ops)
                patch_object(
                    ctx.api_client, params.kind, params.namespace, params.name, body, JSON_PATCH, dry(ctx)
                )
            if unreachable:
                done = f"; restored {', '.join(op['path'] for op in ops)}" if ops else ""
                raise NotRestorable(
                    f"{self._what(params)}: cannot restore {', '.join(unreachable)}: the list item "
                    f"holding it is gone{done}"
                )
            if not ops:
                return {"restored": False, "reason": "patched paths already as before"}
            return {"restored": True, "paths": [op["path"] for op in ops]}

        return retry_on_conflict(attempt)


__all__ = ["PatchResource"]
