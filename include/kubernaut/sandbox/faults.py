"""
Injectable workload faults, so remediation actions have something real to fix.

* ``crashloop`` — the workload's current pods crash repeatedly (CrashLoopBackOff); replacements
  (pod deletion, rollout restart, rollback) are healthy.
* ``oom`` — containers are OOMKilled while their memory limit is at or below the limit at injection
  time; raising the limit (a new rollout) fixes it, deleting pods does not.
* ``unready`` — the current pods run but never pass readiness; replacements are healthy.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from kubernaut.sandbox.store import now_rfc3339

FAULT_TYPES = ("crashloop", "oom", "unready")
WORKLOAD_KINDS = ("deployment", "statefulset", "daemonset")

_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def parse_memory(quantity: Any) -> int | None:
    """Parse a Kubernetes memory quantity (`128Mi`, `1G`, `1e9`) into bytes; None if absent."""
    if quantity is None:
        return None
    match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([kMGT]i?)?\s*", str(quantity))
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


def pod_memory_limit(pod: dict[str, Any]) -> int | None:
    """The smallest container memory limit of the pod (None if any container is unlimited)."""
    limits = [
        parse_memory(((c.get("resources") or {}).get("limits") or {}).get("memory"))
        for c in pod.get("spec", {}).get("containers", [])
    ]
    if not limits or any(limit is None for limit in limits):
        return None
    return min(limit for limit in limits if limit is not None)


@dataclass
class Fault:
    type: str
    namespace: str
    workload: str
    kind: str = "deployment"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    created: str = field(default_factory=now_rfc3339)
    pod_uids: set[str] | None = None  # captured on the first reconciliation that sees the pods
    memory_limit: int | None = None  # oom: the limit at injection; higher limits are healthy
    memory_captured: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "namespace": self.namespace,
            "kind": self.kind,
            self.kind: self.workload,
            "created": self.created,
            "pods": sorted(self.pod_uids) if self.pod_uids is not None else None,
        }

    def affects(self, pod: dict[str, Any]) -> bool:
        if self.type == "oom":
            limit = pod_memory_limit(pod)
            return limit is None or (self.memory_limit is not None and limit <= self.memory_limit)
        return self.pod_uids is not None and pod["metadata"]["uid"] in self.pod_uids


class FaultBook:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def inject(self, type_: str, namespace: str, workload: str, kind: str = "deployment") -> Fault:
        if type_ not in FAULT_TYPES:
            raise ValueError(f"Unknown fault type {type_!r}; expected one of {FAULT_TYPES}")
        if kind not in WORKLOAD_KINDS:
            raise ValueError(f"Unknown workload kind {kind!r}; expected one of {WORKLOAD_KINDS}")
        fault = Fault(type_, namespace, workload, kind)
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.faults.clear()

    def for_workload(self, kind: str, namespace: str, workload: str) -> list[Fault]:
        return [f for f in self.faults if (f.kind, f.namespace, f.workload) == (kind, namespace, workload)]

    def effect(self, pod: dict[str, Any], workload: tuple[str, str] | None) -> str | None:
        """Which fault (type) the pod suffers from, given its owning workload (kind, name)."""
        if workload is None:
            return None
        for fault in self.for_workload(workload[0], pod["metadata"]["namespace"], workload[1]):
            if fault.affects(pod):
                return fault.type
        return None
