"""What the cluster holds, normalised for comparison, and a readable diff between two looks.

"Desired state" objects are every object no controller owns (Deployments, ConfigMaps, Nodes,
bare Pods ...), compared in full except the fields the API server and controllers manage.
Owned objects (ReplicaSets, ControllerRevisions, the pods a controller makes) are replaced by
their controllers by design: only pods are followed, by name and uid.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernaut.sandbox import SandboxCluster

# Kinds that record what happened rather than what is wanted.
SKIPPED_KINDS = frozenset({"Event", "Endpoints", "EndpointSlice", "Lease", "ServiceAccount"})
SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
)
SERVER_ANNOTATIONS = frozenset(
    {"deployment.kubernetes.io/revision", "deprecated.daemonset.template.generation"}
)

Key = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name


def key_text(key: Key) -> str:
    kind, namespace, name = key
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def normalise(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without status and server-managed fields."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for name in SERVER_METADATA:
        meta.pop(name, None)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in SERVER_ANNOTATIONS}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    for ref in meta.get("ownerReferences") or []:
        ref.pop("uid", None)
    if out.get("kind") == "Pod":
        (out.get("spec") or {}).pop("nodeName", None)
    return out


@dataclass
class Snapshot:
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)  # desired state, normalised
    pods: dict[Key, str] = field(default_factory=dict)  # every live pod -> uid
    raw: dict[Key, dict[str, Any]] = field(default_factory=dict)  # desired state as stored

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace or "", name))


def take(cluster: SandboxCluster) -> Snapshot:
    store = cluster.emulator.store

    def collect() -> list[dict[str, Any]]:
        return [copy.deepcopy(obj) for _, obj in store.items()]

    snap = Snapshot()
    for obj in cluster.call(collect):
        kind = str(obj.get("kind", ""))
        meta = obj.get("metadata") or {}
        key = (kind, str(meta.get("namespace") or ""), str(meta.get("name", "")))
        if kind in SKIPPED_KINDS:
            continue
        if kind == "Pod" and not meta.get("deletionTimestamp"):
            snap.pods[key] = str(meta.get("uid", ""))
        if meta.get("ownerReferences"):
            continue
        snap.raw[key] = obj
        snap.objects[key] = normalise(obj)
    return snap


def _path_text(path: list[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: Any, limit: int = 80) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


SECRET_FIELDS = frozenset({"data", "stringData"})


def field_changes(
    before: Any, after: Any, path: list[str | int] | None = None, *, secret: bool = False
) -> list[str]:
    """``path: old -> new`` for each leaf that differs (lists compared item by item); a Secret's
    values (``secret``) show as ``***``: what changed, never what it holds."""
    path = path or []
    both_dicts = isinstance(before, dict) and isinstance(after, dict)
    if secret and path and path[0] in SECRET_FIELDS and before != after and not both_dicts:
        old = "(absent)" if before is None else "***"
        new = "(removed)" if after is None else "***"
        return [f"{_path_text(path)}: {old} -> {new}"]
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[str] = []
        for k in sorted(before.keys() | after.keys()):
            if k not in after or k not in before:
                out += field_changes(before.get(k), after.get(k), [*path, k], secret=secret)
            else:
                out += field_changes(before[k], after[k], [*path, k], secret=secret)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            c
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for c in field_changes(b, a, [*path, i], secret=secret)
        ]
    if before != after:
        old = "(absent)" if before is None else _short(before)
        new = "(removed)" if after is None else _short(after)
        return [f"{_path_text(path)}: {old} -> {new}"]
    return []


@dataclass
class Diff:
    added: list[Key] = field(default_factory=list)
    removed: list[Key] = field(default_factory=list)
    changed: dict[Key, list[str]] = field(default_factory=dict)
    pods_added: list[Key] = field(default_factory=list)
    pods_removed: list[Key] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """No desired-state object differs (pods aside)."""
        return not (self.added or self.removed or self.changed)

    @property
    def nothing(self) -> bool:
        return self.empty and not (self.pods_added or self.pods_removed)

    def lines(self) -> list[str]:
        out = [f"+ {key_text(k)}" for k in self.added]
        out += [f"- {key_text(k)}" for k in self.removed]
        for k, changes in self.changed.items():
            out += [f"~ {key_text(k)} {c}" for c in changes]
        out += [f"- {key_text(k)}" for k in self.pods_removed]
        out += [f"+ {key_text(k)}" for k in self.pods_added]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": [key_text(k) for k in self.added],
            "removed": [key_text(k) for k in self.removed],
            "changed": {key_text(k): v for k, v in self.changed.items()},
            "pods_added": [key_text(k) for k in self.pods_added],
            "pods_removed": [key_text(k) for k in self.pods_removed],
        }


def diff(before: Snapshot, after: Snapshot) -> Diff:
    result = Diff()
    for key in sorted(after.objects.keys() - before.objects.keys()):
        if key[0] != "Pod":
            result.added.append(key)
    for key in sorted(before.objects.keys() - after.objects.keys()):
        if key[0] != "Pod":
            result.removed.append(key)
    for key in sorted(before.objects.keys() & after.objects.keys()):
        changes = field_changes(before.objects[key], after.objects[key], secret=key[0] == "Secret")
        if changes:
            result.changed[key] = changes
    # Pods by name, bare or owned; a bare pod recreated under its own name shows as changed uid.
    for key in sorted(after.pods.keys() - before.pods.keys()):
        result.pods_added.append(key)
    for key in sorted(before.pods.keys() - after.pods.keys()):
        result.pods_removed.append(key)
    for key in sorted(before.pods.keys() & after.pods.keys()):
        if before.pods[key] != after.pods[key]:
            result.pods_removed.append(key)
            result.pods_added.append(key)
    return result


def restored(before: Snapshot, after: Snapshot) -> Diff:
    """What keeps ``after`` from being ``before``: desired-state objects, bare pods included
    (a bare pod recreated by an undo is compared by its spec, not its uid)."""
    result = diff(before, after)
    bare_before = {k for k in before.objects if k[0] == "Pod"}
    bare_after = {k for k in after.objects if k[0] == "Pod"}
    result.added += sorted(bare_after - bare_before)
    result.removed += sorted(bare_before - bare_after)
    result.pods_added, result.pods_removed = [], []
    return result
