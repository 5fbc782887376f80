"""Strategic-merge metadata of the built-in API types: which lists merge item by item and on
which key, which maps are replaced whole.

Taken from the Go struct tags of k8s.io/api (``patchStrategy:"merge" patchMergeKey:"name"``,
``patchStrategy:"retainKeys"``, ``patchStrategy:"replace"``) and k8s.io/apimachinery's
ObjectMeta, for the fields that lead to them in the kinds the sandbox serves. A list field not
described here is atomic: a strategic merge patch replaces it whole (e.g. ``tolerations``,
``spec.taints``, ``args``), as the real API server does. Pure data, shared by the sandbox API
server (which applies strategic merge patches) and the actions (which record what a patch
changes).
"""

from __future__ import annotations

from dataclasses import dataclass

# The directives a strategic merge patch may carry.
DIRECTIVE = "$patch"  # replace | delete (| merge) on a map or a list item
RETAIN_KEYS = "$retainKeys"  # [keys]: the map keeps only these
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"  # .../<field>: [values] removed from a set
SET_ELEMENT_ORDER = "$setElementOrder"  # .../<field>: [items or keys] in the wanted order


@dataclass(frozen=True)
class FieldMeta:
    """One field of a Go struct: the struct type of its value (or of its list items) and its
    patch strategy."""

    type: str | None = None
    merge_key: str | None = None  # patchMergeKey of a list of objects
    merge: bool = False  # patchStrategy includes "merge" (a list merged item by item or as a set)
    replace: bool = False  # patchStrategy "replace": the value is replaced whole, never merged
    retain_keys: bool = False  # patchStrategy includes "retainKeys"


def _merge_list(type_: str | None, key: str, *, retain_keys: bool = False) -> FieldMeta:
    return FieldMeta(type_, key, merge=True, retain_keys=retain_keys)


_CONDITIONS = _merge_list(None, "type")
_OBJECT_META = FieldMeta("ObjectMeta")
_TEMPLATE = FieldMeta("PodTemplateSpec")

# Go type -> JSON field -> metadata. Types with no special field are not listed.
TYPES: dict[str, dict[str, FieldMeta]] = {
    "ObjectMeta": {
        "ownerReferences": _merge_list(None, "uid"),
        "finalizers": FieldMeta(merge=True),  # a list of strings merged as a set
    },
    "PodTemplateSpec": {"metadata": _OBJECT_META, "spec": FieldMeta("PodSpec")},
    "PodSpec": {
        "volumes": _merge_list(None, "name", retain_keys=True),
        "initContainers": _merge_list("Container", "name"),
        "containers": _merge_list("Container", "name"),
        "ephemeralContainers": _merge_list("Container", "name"),
        "imagePullSecrets": _merge_list(None, "name"),
        "hostAliases": _merge_list(None, "ip"),
        "topologySpreadConstraints": _merge_list(None, "topologyKey"),
        "schedulingGates": _merge_list(None, "name"),
        "resourceClaims": _merge_list(None, "name", retain_keys=True),
    },
    "Container": {
        "ports": _merge_list(None, "containerPort"),
        "env": _merge_list(None, "name"),
        "volumeMounts": _merge_list(None, "mountPath"),
        "volumeDevices": _merge_list(None, "devicePath"),
    },
    "PodStatus": {
        "conditions": _CONDITIONS,
        "hostIPs": _merge_list(None, "ip"),
        "podIPs": _merge_list(None, "ip"),
        "resourceClaimStatuses": _merge_list(None, "name", retain_keys=True),
    },
    "Pod": {"metadata": _OBJECT_META, "spec": FieldMeta("PodSpec"), "status": FieldMeta("PodStatus")},
    "Deployment": {
        "metadata": _OBJECT_META,
        "spec": FieldMeta("DeploymentSpec"),
        "status": FieldMeta("Conditions"),
    },
    "DeploymentSpec": {"template": _TEMPLATE, "strategy": FieldMeta(retain_keys=True)},
    "ReplicaSet": {
        "metadata": _OBJECT_META,
        "spec": FieldMeta("TemplateSpec"),
        "status": FieldMeta("Conditions"),
    },
    "StatefulSet": {
        "metadata": _OBJECT_META,
        "spec": FieldMeta("TemplateSpec"),
        "status": FieldMeta("Conditions"),
    },
    "DaemonSet": {
        "metadata": _OBJECT_META,
        "spec": FieldMeta("TemplateSpec"),
        "status": FieldMeta("Conditions"),
    },
    "Job": {"metadata": _OBJECT_META, "spec": FieldMeta("TemplateSpec"), "status": FieldMeta("Conditions")},
    "CronJob": {"metadata": _OBJECT_META, "spec": FieldMeta("CronJobSpec")},
    "CronJobSpec": {"jobTemplate": FieldMeta("JobTemplateSpec")},
    "JobTemplateSpec": {"metadata": _OBJECT_META, "spec": FieldMeta("TemplateSpec")},
    # ReplicaSetSpec, StatefulSetSpec, DaemonSetSpec, JobSpec: only their pod template matters.
    "TemplateSpec": {"template": _TEMPLATE},
    # DeploymentStatus, ReplicaSetStatus, ... NamespaceStatus: conditions merged by type.
    "Conditions": {"conditions": _CONDITIONS},
    "Service": {
        "metadata": _OBJECT_META,
        "spec": FieldMeta("ServiceSpec"),
        "status": FieldMeta("Conditions"),
    },
    "ServiceSpec": {"ports": _merge_list(None, "port")},
    "Node": {"metadata": _OBJECT_META, "spec": FieldMeta("NodeSpec"), "status": FieldMeta("NodeStatus")},
    "NodeSpec": {"podCIDRs": FieldMeta(merge=True)},
    "NodeStatus": {"conditions": _CONDITIONS, "addresses": _merge_list(None, "type")},
    "Namespace": {"metadata": _OBJECT_META, "status": FieldMeta("Conditions")},
    "PersistentVolumeClaim": {"metadata": _OBJECT_META, "status": FieldMeta("Conditions")},
    "ServiceAccount": {"metadata": _OBJECT_META, "secrets": _merge_list(None, "name")},
    "HorizontalPodAutoscaler": {"metadata": _OBJECT_META, "status": FieldMeta("Conditions")},
    "PodDisruptionBudget": {
        "metadata": _OBJECT_META,
        "spec": FieldMeta("PodDisruptionBudgetSpec"),
        "status": FieldMeta("Conditions"),
    },
    "PodDisruptionBudgetSpec": {"selector": FieldMeta(replace=True)},
}

# Built-in kinds without a special field of their own (metadata still merges ownerReferences).
for _kind in (
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Event",
    "PersistentVolume",
    "ControllerRevision",
    "ResourceQuota",
    "NetworkPolicy",
    "StorageClass",
    "Scale",
):
    TYPES.setdefault(_kind, {"metadata": _OBJECT_META})

ATOMIC = FieldMeta()


def field_meta(type_name: str | None, field: str) -> FieldMeta:
    """The metadata of ``field`` in the struct ``type_name``; an unknown field is atomic."""
    if type_name is None:
        return ATOMIC
    return TYPES.get(type_name, {}).get(field, ATOMIC)


def supports_strategic_merge(kind: str) -> bool:
    """Whether the API server takes a strategic merge patch for the kind: built-in kinds do;
    custom resources (and unknown kinds) answer 415 Unsupported Media Type."""
    return kind in TYPES
