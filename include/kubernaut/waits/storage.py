"""Storage: a grown claim's capacity (``pvc_expanded``), a snapshot ready (``snapshot_ready``)."""

from __future__ import annotations

from typing import Any

from kubernaut.waits.clients import WaitClients
from kubernaut.waits.kube import read_custom, read_dict
from kubernaut.waits.spec import Done, Pending, PollResult

RESIZE_PENDING = "FileSystemResizePending"
SNAPSHOT_GROUP, SNAPSHOT_VERSION, SNAPSHOTS = "snapshot.storage.k8s.io", "v1", "volumesnapshots"


async def poll_pvc_expanded(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> PollResult:
    """args: ``namespace``, ``pvc``, ``size``: done when ``status.capacity`` reaches the size, or
    the volume grew and only its file system waits for a pod to mount it (FileSystemResizePending)."""
    from kubernaut.kube.quantity import parse

    pvc = await read_dict(clients, "PersistentVolumeClaim", args["namespace"], args["pvc"])
    status = pvc.get("status") or {}
    seen = (status.get("capacity") or {}).get("storage")
    conditions = [c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"]
    detail = {"capacity": seen, "conditions": conditions}
    if RESIZE_PENDING in conditions or (seen is not None and parse(seen) >= parse(args["size"])):
        return Done(detail)
    return Pending(detail)


async def poll_snapshot_ready(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> PollResult:
    """args: ``namespace``, ``name``: done when the VolumeSnapshot is ``readyToUse``."""
    namespace, name = args["namespace"], args["name"]
    snapshot = await read_custom(
        clients,
        SNAPSHOT_GROUP,
        SNAPSHOT_VERSION,
        namespace,
        SNAPSHOTS,
        name,
        f"volumesnapshot {namespace}/{name}",
    )
    status = (snapshot or {}).get("status") or {}
    detail = {"exists": snapshot is not None, **status}
    return Done(detail) if status.get("readyToUse") else Pending(detail)
