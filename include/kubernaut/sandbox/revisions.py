"""ControllerRevisions, as the StatefulSet and DaemonSet controllers keep them.

Each distinct pod template of a set is stored once as an ``apps/v1`` ControllerRevision named
``<set>-<hash>``, owned by the set, labelled with the template's labels plus
``controller-revision-hash: <hash>``, whose ``data`` is the patch that restores that template
(``{"spec": {"template": {..., "$patch": "replace"}}}``) and whose ``revision`` counts up. Going
back to an earlier template (``kubectl rollout undo``) reuses its revision and gives it the next
number, and the oldest unused revisions beyond ``spec.revisionHistoryLimit`` (default 10) are
deleted, as ``pkg/controller/history`` does.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Collection
from typing import Any

from kubernaut.sandbox.resources import resolve
from kubernaut.sandbox.store import Store

CONTROLLER_REVISIONS = resolve("controllerrevisions")
HASH_LABEL = "controller-revision-hash"
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def revision_hash(template: dict[str, Any]) -> str:
    """A short stable hash of a pod template (the real controller hashes the revision's data)."""
    clean = copy.deepcopy(template)
    ((clean.get("metadata") or {}).get("labels") or {}).pop(HASH_LABEL, None)
    digest = hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).digest()
    return "".join(_HASH_ALPHABET[b % len(_HASH_ALPHABET)] for b in digest[:10])


def revision_data(template: dict[str, Any]) -> dict[str, Any]:
    """What a ControllerRevision of a set stores: the patch that puts its template back."""
    return {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}}


def template_of(revision: dict[str, Any]) -> dict[str, Any]:
    """The pod template a ControllerRevision's data restores."""
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def owned_revisions(store: Store, owner: dict[str, Any]) -> list[dict[str, Any]]:
    """The owner's ControllerRevisions, oldest revision first."""
    uid = owner["metadata"]["uid"]
    found = [
        r
        for r in store.list(CONTROLLER_REVISIONS, owner["metadata"]["namespace"])
        if any(
            ref.get("controller") and ref.get("uid") == uid
            for ref in r["metadata"].get("ownerReferences") or []
        )
    ]
    return sorted(found, key=lambda r: int(r.get("revision") or 0))


def sync_revisions(
    store: Store,
    owner: dict[str, Any],
    owner_ref: dict[str, Any],
    in_use: Callable[[], Collection[str]],
) -> dict[str, Any]:
    """Make sure the owner's current template has a ControllerRevision with the highest number
    and return it; then trim the history. ``in_use``: names of revisions that must stay (the
    current and update revisions, revisions pods still run)."""
    template = owner["spec"].get("template") or {}
    pod_hash = revision_hash(template)
    name = f"{owner['metadata']['name']}-{pod_hash}"
    namespace = owner["metadata"]["namespace"]
    revisions = owned_revisions(store, owner)
    latest = max((int(r.get("revision") or 0) for r in revisions), default=0)
    current = next((r for r in revisions if r["metadata"]["name"] == name), None)
    if current is None:
        labels = {**((template.get("metadata") or {}).get("labels") or {}), HASH_LABEL: pod_hash}
        current = store.create(
            CONTROLLER_REVISIONS,
            {
                "metadata": {"name": name, "labels": labels, "ownerReferences": [owner_ref]},
                "data": revision_data(template),
                "revision": latest + 1,
            },
            namespace,
        )
        revisions.append(current)
    elif int(current.get("revision") or 0) < latest:
        updated = copy.deepcopy(current)
        updated["revision"] = latest + 1
        updated["metadata"].pop("resourceVersion", None)
        current = store.update(CONTROLLER_REVISIONS, namespace, name, updated, check_version=False)
        revisions = [current if r["metadata"]["name"] == name else r for r in revisions]
    limit = int(owner["spec"].get("revisionHistoryLimit", 10))
    keep = {name, *in_use()}
    stale = [
        r
        for r in sorted(revisions, key=lambda r: int(r.get("revision") or 0))
        if r["metadata"]["name"] not in keep
    ]
    for old in stale[: max(0, len(stale) - limit)]:
        store.delete(CONTROLLER_REVISIONS, namespace, old["metadata"]["name"])
    return current
