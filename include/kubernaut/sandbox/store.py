"""
In-memory object storage with the real API's metadata semantics.

Every write bumps one global, monotonically increasing resourceVersion (like etcd's revision),
sets uid/creationTimestamp/generation, and is published as a watch event.
All methods are synchronous and must be called from the server's event loop thread only,
which makes each operation atomic without locks.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import re
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kubernaut.sandbox import errors
from kubernaut.sandbox.defaults import apply_defaults
from kubernaut.sandbox.resources import ResourceSpec, resolve

ObjectKey = tuple[str, str | None, str]  # (storage key, namespace or None, name)

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Resources whose names must be DNS-1123 labels (no dots, <= 63 chars) rather than subdomains.
_LABEL_NAMED = {"namespaces", "services"}
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the real API's alphabet for generated suffixes


def now_rfc3339() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(length))


def _drop_empty_maps(obj: dict[str, Any]) -> None:
    """The real API server omits empty labels/annotations (``omitempty``): a patch that
    removes the last key leaves no empty map behind."""
    metas = [obj.get("metadata"), ((obj.get("spec") or {}).get("template") or {}).get("metadata")]
    for meta in metas:
        if isinstance(meta, dict):
            for key in ("labels", "annotations"):
                if meta.get(key) == {}:
                    del meta[key]


def pod_grace_period(pod: dict[str, Any], requested: int | None) -> int:
    """The grace period the real API gives a pod's deletion: none for a pod that never ran
    (unscheduled) or has finished; else the requested one (negative: 1), or its spec's."""
    if not pod["spec"].get("nodeName") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return 1 if requested < 0 else requested
    return int(pod["spec"].get("terminationGracePeriodSeconds", 30))


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything that counts for metadata.generation: all but metadata, status, and type info."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


@dataclass(frozen=True)
class WatchEvent:
    resource_version: int
    type: str  # ADDED / MODIFIED / DELETED
    storage_key: str
    old: dict[str, Any] | None
    new: dict[str, Any]


class Store:
    def __init__(self, history_size: int = 5000) -> None:
        self._objects: dict[ObjectKey, dict[str, Any]] = {}
        self._revision = 0
        self._history: deque[WatchEvent] = deque(maxlen=history_size)
        self._watchers: set[asyncio.Queue[WatchEvent]] = set()
        # Admission checks run on every create once the object has its name, uid and defaults
        # (mutating ones may change it; a refusal raises an ApiError): see batch.admit, quota.admission.
        self.admission: list[Callable[[ResourceSpec, dict[str, Any]], None]] = []

    # --- revisions & watch plumbing -------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def oldest_replayable(self) -> int:
        return self._history[0].resource_version - 1 if self._history else self._revision

    def history_since(self, revision: int) -> list[WatchEvent]:
        return [event for event in self._history if event.resource_version > revision]

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)

    def subscribe(self) -> asyncio.Queue[WatchEvent]:
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self._watchers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[WatchEvent]) -> None:
        self._watchers.discard(queue)

    def _publish(self, type_: str, key: ObjectKey, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        event = WatchEvent(self._revision, type_, key[0], copy.deepcopy(old), copy.deepcopy(new))
        self._history.append(event)
        for queue in self._watchers:
            queue.put_nowait(event)

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)

    # --- reading --------------------------------------------------------------------------------

    @staticmethod
    def key(spec: ResourceSpec, namespace: str | None, name: str) -> ObjectKey:
        return (spec.storage_key, namespace if spec.namespaced else None, name)

    def get(self, spec: ResourceSpec, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The live stored object (not a copy): callers must not mutate it."""
        return self._objects.get(self.key(spec, namespace, name))

    def require(self, spec: ResourceSpec, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.get(spec, namespace, name)
        if obj is None:
            raise errors.not_found(spec, name)
        return obj

    def list(self, spec: ResourceSpec, namespace: str | None = None) -> list[dict[str, Any]]:
        """Live stored objects sorted by namespace/name (as etcd returns them)."""
        found = [
            obj
            for (storage_key, obj_namespace, _), obj in self._objects.items()
            if storage_key == spec.storage_key and (namespace is None or obj_namespace == namespace)
        ]
        return sorted(found, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))

    def items(self) -> Iterator[tuple[ObjectKey, dict[str, Any]]]:
        return iter(list(self._objects.items()))

    def find_by_uid(self, uid: str) -> dict[str, Any] | None:
        for obj in self._objects.values():
            if obj["metadata"].get("uid") == uid:
                return obj
        return None

    # --- writing --------------------------------------------------------------------------------

    def create(
        self,
        spec: ResourceSpec,
        obj: dict[str, Any],
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        keep_status: bool = False,
    ) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if namespace is not None and meta.get("namespace") not in (None, "", namespace):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if spec.namespaced:
            meta["namespace"] = namespace or meta.get("namespace") or "default"
            if self.get(resolve("namespaces"), None, meta["namespace"]) is None:
                raise errors.namespace_not_found(meta["namespace"])
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{random_suffix()}"
        self._validate_name(spec, meta.get("name"))
        if self.get(spec, meta.get("namespace"), meta["name"]) is not None:
            raise errors.already_exists(spec, meta["name"])

        obj["apiVersion"], obj["kind"] = spec.api_version, spec.kind
        apply_defaults(spec.plural, obj)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        for field in ("resourceVersion", "deletionTimestamp", "selfLink", "managedFields"):
            meta.pop(field, None)
        if spec.has_status and not keep_status:
            obj.pop("status", None)  # status is owned by controllers, as in the real API
        for admit in self.admission:
            admit(spec, obj)
        if spec.plural == "pods" and not keep_status:
            obj["status"] = {"phase": "Pending"}
        if spec.plural == "namespaces":
            obj.setdefault("status", {"phase": "Active"})
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        if dry_run:
            return obj
        meta["resourceVersion"] = self._next_revision()
        key = self.key(spec, meta.get("namespace"), meta["name"])
        self._objects[key] = obj
        self._publish("ADDED", key, None, obj)
        return copy.deepcopy(obj)

    def update(
        self,
        spec: ResourceSpec,
        namespace: str | None,
        name: str,
        new: dict[str, Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        check_version: bool = True,
        keep_status: bool = False,
    ) -> dict[str, Any]:
        """
        Replace an object (PUT semantics). Patches are resolved to a full object by the caller.

        For the main resource, the status is preserved (it belongs to the /status subresource);
        for /status, only the status is taken from the new object.
        """
        current = self.require(spec, namespace, name)
        new = copy.deepcopy(new)
        new_meta = new.setdefault("metadata", {})
        if new_meta.get("name") not in (None, name):
            raise errors.bad_request(
                f"the name of the object ({new_meta.get('name')}) does not match the name on the URL ({name})"
            )
        requested_version = new_meta.get("resourceVersion")
        if (
            check_version
            and requested_version
            and requested_version != current["metadata"]["resourceVersion"]
        ):
            raise errors.conflict(spec, name)

        if subresource == "status":
            result = copy.deepcopy(current)
            result["status"] = new.get("status", {})
            # metadata changes via /status are ignored, except what controllers legitimately own
        else:
            result = new
            meta = result["metadata"]
            for field in (
                "uid",
                "creationTimestamp",
                "namespace",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if field in current["metadata"]:
                    meta[field] = current["metadata"][field]
                else:
                    meta.pop(field, None)
            meta["name"] = name
            apply_defaults(spec.plural, result)
            _drop_empty_maps(result)
            if spec.has_status and not keep_status:
                if "status" in current:
                    result["status"] = copy.deepcopy(current["status"])
                else:
                    result.pop("status", None)
            if _spec_part(result) != _spec_part(current):
                meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        result["apiVersion"], result["kind"] = spec.api_version, spec.kind
        result["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if result == current or dry_run:
            return copy.deepcopy(result)  # a no-op write does not bump the resourceVersion

        result["metadata"]["resourceVersion"] = self._next_revision()
        key = self.key(spec, namespace, name)
        self._objects[key] = result
        meta = result["metadata"]
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not meta.get("deletionGracePeriodSeconds")
        ):
            # The last finalizer is removed: the deletion completes (a pod still in its grace
            # period stays until its kubelet deletes it).
            del self._objects[key]
            self._publish("DELETED", key, current, result)
        else:
            self._publish("MODIFIED", key, current, result)
        return copy.deepcopy(result)

    def delete(
        self,
        spec: ResourceSpec,
        namespace: str | None,
        name: str,
        *,
        dry_run: bool = False,
        grace_period_seconds: int | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """
        Delete, or mark for deletion. Returns the last state and whether it is gone.

        As in the real API, an object with finalizers is only marked (deletionTimestamp), and a
        running pod is deleted gracefully: it is marked with its grace period and stays,
        Terminating, until its kubelet (the controller) has stopped it and deletes it with grace
        period 0. A second delete may only shorten the grace period; 0 removes it at once.
        """
        current = self.require(spec, namespace, name)
        key = self.key(spec, namespace, name)
        meta = current["metadata"]
        grace = pod_grace_period(current, grace_period_seconds) if spec.plural == "pods" else 0
        finalizers = bool(meta.get("finalizers"))
        if grace > 0 or finalizers:
            terminating = meta.get("deletionTimestamp") is not None
            if terminating and grace >= int(meta.get("deletionGracePeriodSeconds") or 0):
                return copy.deepcopy(current), False  # already terminating at least that fast
            return self._mark_deleted(key, current, grace, dry_run), False
        if dry_run:
            return copy.deepcopy(current), True
        if spec.plural == "namespaces":
            self._delete_namespace_contents(name)
        del self._objects[key]
        gone = copy.deepcopy(current)
        gone["metadata"]["resourceVersion"] = self._next_revision()
        self._publish("DELETED", key, current, gone)
        return gone, True

    def _mark_deleted(
        self, key: ObjectKey, current: dict[str, Any], grace: int, dry_run: bool
    ) -> dict[str, Any]:
        marked = copy.deepcopy(current)
        deadline = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=grace)
        marked["metadata"]["deletionTimestamp"] = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
        marked["metadata"]["deletionGracePeriodSeconds"] = grace
        if dry_run:
            return marked
        marked["metadata"]["resourceVersion"] = self._next_revision()
        self._objects[key] = marked
        self._publish("MODIFIED", key, current, marked)
        return copy.deepcopy(marked)

    def _delete_namespace_contents(self, namespace: str) -> None:
        # The real namespace controller does this asynchronously; immediate is good enough here.
        for key, obj in self.items():
            if key[1] == namespace:
                del self._objects[key]
                gone = copy.deepcopy(obj)
                gone["metadata"]["resourceVersion"] = self._next_revision()
                self._publish("DELETED", key, obj, gone)

    @staticmethod
    def _validate_name(spec: ResourceSpec, name: Any) -> None:
        if not name:
            raise errors.invalid(spec, "", "metadata.name", "", "name or generateName is required")
        if spec.plural in _LABEL_NAMED:
            if len(name) > 63 or not _DNS1123_LABEL.match(name):
                raise errors.invalid(
                    spec,
                    name,
                    "metadata.name",
                    name,
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                    "characters or '-', and must start and end with an alphanumeric character",
                )
        elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
            raise errors.invalid(
                spec,
                name,
                "metadata.name",
                name,
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character",
            )
