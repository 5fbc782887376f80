"""The alert as seen by templates: Alertmanager's fields plus derived ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernaut.target import NO_TARGET, Target

__all__ = ["NO_TARGET", "Target", "alert_context", "derive_target"]  # Target: kubernaut.target

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
    ("poddisruptionbudget", "PodDisruptionBudget"),
    ("persistentvolume", "PersistentVolume"),
    ("node", "Node"),
    ("resourcequota", "ResourceQuota"),
    ("resource", "Unknown"),
)


# kube-prometheus (kubernetes-mixin) alerts and the label naming their object. Needed because
# kube-state-metrics series can also carry `pod`/`container` of the kube-state-metrics pod
# itself (kube-prometheus-stack keeps them), which must not win over `deployment`.
KNOWN_ALERT_TARGETS: dict[str, str] = {
    "KubePodCrashLooping": "pod",
    "KubePodNotReady": "pod",
    "KubeContainerWaiting": "pod",
    "KubePodOOMKilled": "pod",
    "KubeDeploymentReplicasMismatch": "deployment",
    "KubeDeploymentGenerationMismatch": "deployment",
    "KubeDeploymentRolloutStuck": "deployment",
    "KubeStatefulSetReplicasMismatch": "statefulset",
    "KubeStatefulSetGenerationMismatch": "statefulset",
    "KubeStatefulSetUpdateNotRolledOut": "statefulset",
    "KubeDaemonSetRolloutStuck": "daemonset",
    "KubeDaemonSetNotScheduled": "daemonset",
    "KubeDaemonSetMisScheduled": "daemonset",
    "KubeJobNotCompleted": "job_name",
    "KubeJobFailed": "job_name",
    "KubeHpaReplicasMismatch": "horizontalpodautoscaler",
    "KubeHpaMaxedOut": "horizontalpodautoscaler",
    "KubePdbNotEnoughHealthyPods": "poddisruptionbudget",
    "KubePersistentVolumeFillingUp": "persistentvolumeclaim",
    "KubePersistentVolumeInodesFillingUp": "persistentvolumeclaim",
    "KubePersistentVolumeErrors": "persistentvolume",
    "KubeNodeNotReady": "node",
    "KubeNodeUnreachable": "node",
    "KubeNodeReadinessFlapping": "node",
    "KubeletTooManyPods": "node",
    "NodeFilesystemSpaceFillingUp": "node",
    "KubeNodePressure": "node",
    "KubeQuotaAlmostFull": "resourcequota",
    "KubeQuotaFullyUsed": "resourcequota",
    "KubeQuotaExceeded": "resourcequota",
}
# Scrape jobs whose series describe a node but carry the exporter pod's own `pod`/`namespace`
# (kube-prometheus relabels node-exporter's `instance` to the node name; node-mixin's default
# job is `node`). Their alerts are about the node named by `node`, else by `instance`.
NODE_INSTANCE_JOBS = frozenset({"node-exporter", "node"})
_KIND_OF_LABEL = dict(RESOURCE_LABELS)
CLUSTER_SCOPED = frozenset({"Node", "PersistentVolume", "Namespace"})


def derive_target(labels: Mapping[str, str]) -> Target:
    """The object an alert is about; a pod stays a pod (the run resolves its owner)."""
    if labels.get("job") in NODE_INSTANCE_JOBS and not labels.get("node") and labels.get("instance"):
        return Target("Node", "", _host(labels["instance"]))
    if labels.get("alertname", "").startswith("CertManagerCert") and labels.get("name"):
        # cert-manager's metrics name the Certificate by `name`; its own `namespace` label becomes
        # `exported_namespace` when the scrape adds the exporter pod's namespace
        namespace = labels.get("exported_namespace") or labels.get("namespace", "")
        return Target("Certificate", namespace, labels["name"])
    known = KNOWN_ALERT_TARGETS.get(labels.get("alertname", ""))
    order = [known] if known and labels.get(known) else [label for label, _ in RESOURCE_LABELS]
    for label in order:
        value = labels.get(label, "")
        if value:
            kind = _KIND_OF_LABEL[label]
            namespace = "" if kind in CLUSTER_SCOPED else labels.get("namespace", "")
            return Target(kind, namespace, value)
    return NO_TARGET


def _host(instance: str) -> str:
    """``worker-1:9100`` -> ``worker-1``; ``[fd00::1]:9100`` -> ``fd00::1``; a bare name stays."""
    if instance.startswith("["):
        return instance[1:].partition("]")[0]
    host, sep, port = instance.rpartition(":")
    return host if sep and port.isdigit() and ":" not in host else instance


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
    target = derive_target(labels)
    return {
        "name": labels.get("alertname", ""),
        "status": str(raw.get("status", "firing")),
        "labels": labels,
        "annotations": annotations,
        "namespace": labels.get("namespace", ""),
        "resource": target.name,
        "kind": target.kind,
        "severity": labels.get("severity", ""),
        "fingerprint": str(raw.get("fingerprint", "")),
        "startsAt": str(raw.get("startsAt", "")),
        "endsAt": str(raw.get("endsAt", "")),
        "generatorURL": str(raw.get("generatorURL", "")),
    }
