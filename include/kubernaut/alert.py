"""The alert as seen by templates: Alertmanager's fields plus derived ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Labels that name the object an alert is about, most specific first
# (kube-prometheus / kubernetes-mixin label names).
RESOURCE_LABELS: tuple[tuple[str, str], ...] = (
    ("pod", "Pod"),
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("daemonset", "DaemonSet"),
    ("job_name", "Job"),
    ("persistentvolumeclaim", "PersistentVolumeClaim"),
    ("horizontalpodautoscaler", "HorizontalPodAutoscaler"),
    ("node", "Node"),
    ("resource", "Unknown"),
)


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def alert_context(conf: Mapping[str, Any] | None) -> dict[str, Any]:
    """Build ``alert`` for rendering from a run's conf (``{"alert": {...}}`` or the alert itself).

    Every value stays data: strings are copied, never compiled.
    """
    raw: Any = (conf or {}).get("alert", conf or {})
    if not isinstance(raw, Mapping):
        raw = {}
    labels = _strings(raw.get("labels"))
    annotations = _strings(raw.get("annotations"))
    kind, resource = "", ""
    for label, k in RESOURCE_LABELS:
        if labels.get(label):
            kind, resource = k, labels[label]
            break
    return {
        "name": labels.get("alertname", ""),
        "status": str(raw.get("status", "firing")),
        "labels": labels,
        "annotations": annotations,
        "namespace": labels.get("namespace", ""),
        "resource": resource,
        "kind": kind,
        "severity": labels.get("severity", ""),
        "fingerprint": str(raw.get("fingerprint", "")),
        "startsAt": str(raw.get("startsAt", "")),
        "endsAt": str(raw.get("endsAt", "")),
        "generatorURL": str(raw.get("generatorURL", "")),
    }
