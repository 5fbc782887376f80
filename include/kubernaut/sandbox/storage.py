"""Storage behaviour of the sandbox: PersistentVolumeClaims bind and resize at once, and
VolumeSnapshots (when their CRD is served) become ready, as a CSI driver would make them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kubernaut.sandbox.resources import ResourceSpec, resolve
from kubernaut.sandbox.store import Store, now_rfc3339

PVCS, STORAGECLASSES = resolve("persistentvolumeclaims"), resolve("storageclasses")
VOLUMESNAPSHOTS = resolve("volumesnapshots.snapshot.storage.k8s.io")
# Annotate a claim so that a later expansion stops at FileSystemResizePending (a real volume does
# until a pod mounts it again) instead of completing at once.
FS_RESIZE_PENDING = "sandbox.kubernaut.io/filesystem-resize-pending"
SetStatus = Callable[[ResourceSpec, dict[str, Any], dict[str, Any]], None]


def reconcile_claims(store: Store, set_status: SetStatus) -> None:
    """A claim of an existing StorageClass is Bound with the requested capacity (so an expansion
    completes immediately); without its StorageClass it stays Pending, as with no provisioner."""
    for pvc in store.list(PVCS):
        if pvc["metadata"].get("deletionTimestamp"):
            continue
        spec, status = pvc.get("spec") or {}, copy.deepcopy(pvc.get("status") or {})
        if status.get("phase") != "Bound":
            class_name = spec.get("storageClassName")
            if not class_name or store.get(STORAGECLASSES, None, class_name) is None:
                set_status(PVCS, pvc, {**status, "phase": "Pending"})
                continue
            status.update(phase="Bound", accessModes=spec.get("accessModes") or ["ReadWriteOnce"])
        requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        current = (status.get("capacity") or {}).get("storage")
        if requested and requested != current:
            annotations = pvc["metadata"].get("annotations") or {}
            if current and annotations.get(FS_RESIZE_PENDING) == "true":
                message = (
                    "Waiting for user to (re-)start a pod to finish file system resize of volume on node."
                )
                status["conditions"] = [
                    {"type": "FileSystemResizePending", "status": "True", "message": message}
                ]
            else:
                status["capacity"] = {"storage": requested}
        set_status(PVCS, pvc, status)


def reconcile_snapshots(store: Store, set_status: SetStatus) -> None:
    """A snapshot of a Bound claim is ready at once; of anything else it reports an error."""
    for snapshot in store.list(VOLUMESNAPSHOTS):
        status = snapshot.get("status") or {}
        if status.get("readyToUse") or status.get("error"):
            continue
        meta = snapshot["metadata"]
        source = ((snapshot.get("spec") or {}).get("source") or {}).get("persistentVolumeClaimName")
        pvc = store.get(PVCS, meta["namespace"], source) if source else None
        pvc_status = (pvc or {}).get("status") or {}
        if pvc is None or pvc_status.get("phase") != "Bound":
            message = f"failed to take snapshot: persistentvolumeclaim {source} is not bound"
            set_status(VOLUMESNAPSHOTS, snapshot, {"readyToUse": False, "error": {"message": message}})
            continue
        set_status(
            VOLUMESNAPSHOTS,
            snapshot,
            {
                "boundVolumeSnapshotContentName": f"snapcontent-{meta['uid']}",
                "creationTime": now_rfc3339(),
                "readyToUse": True,
                "restoreSize": (pvc_status.get("capacity") or {}).get("storage"),
            },
        )
