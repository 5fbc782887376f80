"""The catalogue of resources served by the sandbox, as the real API's discovery describes them."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

ALL_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)


@dataclass(frozen=True)
class ResourceSpec:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    # Versions served for the same storage (e.g. HPA v1 and v2 share the objects).
    extra_versions: tuple[str, ...] = ()
    verbs: tuple[str, ...] = field(default=ALL_VERBS)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> str:
        """Version-independent identity: objects are shared between the served versions."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def display(self) -> str:
        """How the real API names the resource in error messages: `deployments.apps`, `pods`."""
        return self.storage_key


RESOURCES: tuple[ResourceSpec, ...] = (
    ResourceSpec(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        ("ns",),
        ("status", "finalize"),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    ResourceSpec("", "v1", "nodes", "Node", False, ("no",), ("status", "proxy")),
    ResourceSpec("", "v1", "pods", "Pod", True, ("po",), ("status", "log", "eviction", "binding", "exec")),
    ResourceSpec(
        "",
        "v1",
        "services",
        "Service",
        True,
        ("svc",),
        ("status", "proxy"),
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    ResourceSpec("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    ResourceSpec("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    ResourceSpec("", "v1", "secrets", "Secret", True),
    ResourceSpec("", "v1", "events", "Event", True, ("ev",)),
    ResourceSpec("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), ("status",)),
    ResourceSpec("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",), ("status",)),
    ResourceSpec("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    ResourceSpec("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), ("status",)),
    ResourceSpec("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("status", "scale")),
    ResourceSpec("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("status", "scale")),
    ResourceSpec("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("status", "scale")),
    ResourceSpec("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("status",)),
    ResourceSpec("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    ResourceSpec(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        ("hpa",),
        ("status",),
        extra_versions=("v1",),
    ),
    ResourceSpec("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), ("status",)),
    ResourceSpec("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    ResourceSpec("batch", "v1", "jobs", "Job", True, (), ("status",)),
    ResourceSpec("batch", "v1", "cronjobs", "CronJob", True, ("cj",), ("status",)),
    ResourceSpec("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
    ResourceSpec("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",)),
    ResourceSpec("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ResourceSpec("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ResourceSpec("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceSpec("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
)

# Custom resources: a real cluster serves them only once their CRDs are installed, so a sandbox
# serves them only when asked (`SandboxCluster(crds=...)`) and tests can cover both cases.
CRD_RESOURCES: tuple[ResourceSpec, ...] = (
    ResourceSpec(
        "snapshot.storage.k8s.io", "v1", "volumesnapshots", "VolumeSnapshot", True, ("vs",), ("status",)
    ),
    ResourceSpec(
        "snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", "VolumeSnapshotClass", False, ("vsclass",)
    ),
    # Cluster API (sandbox/capi.py) and cert-manager (sandbox/certmanager.py).
    ResourceSpec(
        "cluster.x-k8s.io",
        "v1beta1",
        "machinedeployments",
        "MachineDeployment",
        True,
        ("md",),
        ("status", "scale"),
    ),
    ResourceSpec(
        "cluster.x-k8s.io", "v1beta1", "machinesets", "MachineSet", True, ("ms",), ("status", "scale")
    ),
    ResourceSpec("cluster.x-k8s.io", "v1beta1", "machines", "Machine", True, ("ma",), ("status",)),
    ResourceSpec(
        "cert-manager.io", "v1", "certificates", "Certificate", True, ("cert", "certs"), ("status",)
    ),
    ResourceSpec("cert-manager.io", "v1", "issuers", "Issuer", True, (), ("status",)),
    ResourceSpec("cert-manager.io", "v1", "clusterissuers", "ClusterIssuer", False, (), ("status",)),
)


def crd_keys(names: Iterable[str]) -> frozenset[str]:
    """Storage keys of the CRD resources named by storage key (`volumesnapshots.snapshot.storage.k8s.io`)
    or by API group (`snapshot.storage.k8s.io`: all of its resources)."""
    keys: set[str] = set()
    for name in names:
        found = {s.storage_key for s in CRD_RESOURCES if name in (s.storage_key, s.group)}
        if not found:
            known = sorted({s.storage_key for s in CRD_RESOURCES} | {s.group for s in CRD_RESOURCES})
            raise KeyError(f"Unknown CRD resource {name!r}; known: {', '.join(known)}")
        keys |= found
    return frozenset(keys)


def served_resources(crds: Collection[str] = ()) -> tuple[ResourceSpec, ...]:
    """The built-in resources plus the CRD resources (by storage key) this sandbox serves."""
    return RESOURCES + tuple(s for s in CRD_RESOURCES if s.storage_key in crds)


# Kinds of subresources differ from their parents (discovery must say so for typed clients).
SUBRESOURCE_KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name: (group, kind, verbs)
    "scale": ("autoscaling", "Scale", ("get", "patch", "update")),
    "status": ("", "", ("get", "patch", "update")),
    "log": ("", "Pod", ("get",)),
    "eviction": ("policy", "Eviction", ("create",)),
    "binding": ("", "Binding", ("create",)),
    "exec": ("", "PodExecOptions", ("create", "get")),
    "proxy": ("", "", ("create", "delete", "get", "patch", "update")),
    "finalize": ("", "", ("update",)),
}


def find_resource(group: str, version: str, plural: str, crds: Collection[str] = ()) -> ResourceSpec | None:
    for spec in served_resources(crds):
        if spec.group == group and spec.plural == plural and version in (spec.version, *spec.extra_versions):
            return spec
    return None


def resolve(kind_or_plural: str) -> ResourceSpec:
    """Find a resource by plural, kind, singular, or short name (case-insensitive), like kubectl."""
    wanted = kind_or_plural.lower()
    group = None
    if "." in wanted:  # "deployments.apps"
        wanted, group = wanted.split(".", 1)
    # CRD resources resolve too (the store and the controller name them), served or not.
    for spec in RESOURCES + CRD_RESOURCES:
        if group is not None and spec.group != group:
            continue
        if wanted in (spec.plural, spec.singular, *spec.short_names):
            return spec
    raise KeyError(f"Unknown resource: {kind_or_plural!r}")


def served_group_versions(crds: Collection[str] = ()) -> dict[str, list[str]]:
    """Non-core API groups and their served versions, preferred version first."""
    groups: dict[str, list[str]] = {}
    for spec in served_resources(crds):
        if spec.group:
            versions = groups.setdefault(spec.group, [])
            for version in (spec.version, *spec.extra_versions):
                if version not in versions:
                    versions.append(version)
    return groups
