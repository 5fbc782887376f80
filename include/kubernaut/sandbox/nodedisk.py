"""Node disk pressure in the sandbox, as the kubelet's eviction manager reports it.

A node whose ``DiskPressure`` condition is True (seeded in its status, as a kubelet whose
image/container filesystem crossed an eviction threshold reports it; the node lifecycle
controller adds the ``node.kubernetes.io/disk-pressure:NoSchedule`` taint) recovers once space
is freed on it: here, when a pod bound to that node (``spec.nodeName``) that mounts a
``hostPath`` volume has Succeeded after the pressure began (a cleanup Job, as operators run
them). Then the kubelet reports ``DiskPressure=False`` (``KubeletHasNoDiskPressure``) and the
taint is removed. Nothing else clears it: deleting pods elsewhere or cordoning does not.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from kubernaut.sandbox.resources import resolve
from kubernaut.sandbox.store import now_rfc3339

if TYPE_CHECKING:
    from kubernaut.sandbox.controller import Controller

NODES, PODS = resolve("nodes"), resolve("pods")
DISK_PRESSURE_TAINT = "node.kubernetes.io/disk-pressure"


def _freed_space(pod: dict[str, Any], node: str, since: str) -> bool:
    spec = pod.get("spec") or {}
    return (
        spec.get("nodeName") == node
        and (pod.get("status") or {}).get("phase") == "Succeeded"
        and any("hostPath" in v for v in spec.get("volumes") or [])
        and pod["metadata"].get("creationTimestamp", "") >= since
    )


def reconcile(ctl: Controller) -> None:
    for node in ctl.store.list(NODES):
        status = node.get("status") or {}
        conditions = status.get("conditions") or []
        pressure = next((c for c in conditions if c.get("type") == "DiskPressure"), None)
        if pressure is None or pressure.get("status") != "True":
            continue
        name = node["metadata"]["name"]
        since = str(pressure.get("lastTransitionTime") or "")
        if not any(_freed_space(p, name, since) for p in ctl.store.list(PODS)):
            continue
        relieved = {
            "type": "DiskPressure",
            "status": "False",
            "reason": "KubeletHasNoDiskPressure",
            "message": "kubelet has no disk pressure",
            "lastTransitionTime": now_rfc3339(),
            "lastHeartbeatTime": now_rfc3339(),
        }
        new_status = copy.deepcopy(status)
        new_status["conditions"] = [relieved if c is pressure else c for c in conditions]
        ctl._set_status(NODES, node, new_status)
        taints = (node.get("spec") or {}).get("taints") or []
        kept = [t for t in taints if t.get("key") != DISK_PRESSURE_TAINT]
        if kept != taints:
            untainted = copy.deepcopy(ctl.store.require(NODES, None, name))
            untainted["spec"]["taints"] = kept
            if not kept:
                del untainted["spec"]["taints"]
            ctl._write(NODES, untainted)
        ctl.event(node, "NodeHasNoDiskPressure", f"Node {name} status is now: NodeHasNoDiskPressure")


__all__ = ["DISK_PRESSURE_TAINT", "reconcile"]
