"""PodDisruptionBudget arithmetic shared by the eviction endpoint and the PDB status controller."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernaut.sandbox.selectors import label_selector_from_object, labels_match


def is_pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def scaled_value(value: Any, total: int) -> int:
    """IntOrString: ints as-is; percentages of total rounded up (as the disruption controller does)."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


@dataclass(frozen=True)
class Budget:
    expected: int
    current_healthy: int
    desired_healthy: int

    @property
    def disruptions_allowed(self) -> int:
        return max(0, self.current_healthy - self.desired_healthy)


def selected_pods(pdb: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    selector = pdb.get("spec", {}).get("selector")
    if not selector:  # policy/v1: an empty selector matches all pods of the namespace
        return [p for p in pods if p["metadata"]["namespace"] == pdb["metadata"]["namespace"]]
    requirements = label_selector_from_object(selector)
    return [
        p
        for p in pods
        if p["metadata"]["namespace"] == pdb["metadata"]["namespace"]
        and labels_match(requirements, p["metadata"].get("labels"))
    ]


def compute_budget(
    pdb: dict[str, Any],
    pods: list[dict[str, Any]],
    scale_of: Callable[[dict[str, Any]], tuple[str, int] | None] | None = None,
) -> Budget:
    """
    `scale_of(pod)` gives the pod's top controller (uid, desired replicas). As in the real disruption
    controller, percentages and maxUnavailable count against the controllers' scale, not the live pods.
    """
    matching = [p for p in selected_pods(pdb, pods) if not p["metadata"].get("deletionTimestamp")]
    expected = len(matching)
    healthy = sum(1 for p in matching if is_pod_ready(p))
    spec = pdb.get("spec", {})
    min_available = spec.get("minAvailable")
    if scale_of is not None and (spec.get("maxUnavailable") is not None or isinstance(min_available, str)):
        scales = dict(filter(None, (scale_of(p) for p in matching)))
        expected = sum(scales.values()) if scales else expected
    if spec.get("maxUnavailable") is not None:
        desired = max(0, expected - scaled_value(spec["maxUnavailable"], expected))
    elif spec.get("minAvailable") is not None:
        desired = scaled_value(spec["minAvailable"], expected)
    else:
        desired = 0
    return Budget(expected, healthy, desired)
