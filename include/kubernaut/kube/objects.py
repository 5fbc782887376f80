"""Read and patch objects of a fixed set of kinds through the typed client, as plain dicts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from kubernaut.kube.errors import NotFound, api_errors


@dataclass(frozen=True)
class KindApi:
    api: Callable[[client.ApiClient], Any]
    suffix: str  # e.g. "namespaced_deployment" -> read_namespaced_deployment / patch_...
    namespaced: bool = True


KINDS: dict[str, KindApi] = {
    "Pod": KindApi(client.CoreV1Api, "namespaced_pod"),
    "Service": KindApi(client.CoreV1Api, "namespaced_service"),
    "ConfigMap": KindApi(client.CoreV1Api, "namespaced_config_map"),
    "Secret": KindApi(client.CoreV1Api, "namespaced_secret"),
    "PersistentVolumeClaim": KindApi(client.CoreV1Api, "namespaced_persistent_volume_claim"),
    "Node": KindApi(client.CoreV1Api, "node", namespaced=False),
    "Namespace": KindApi(client.CoreV1Api, "namespace", namespaced=False),
    "Deployment": KindApi(client.AppsV1Api, "namespaced_deployment"),
    "StatefulSet": KindApi(client.AppsV1Api, "namespaced_stateful_set"),
    "DaemonSet": KindApi(client.AppsV1Api, "namespaced_daemon_set"),
    "ReplicaSet": KindApi(client.AppsV1Api, "namespaced_replica_set"),
    "HorizontalPodAutoscaler": KindApi(client.AutoscalingV2Api, "namespaced_horizontal_pod_autoscaler"),
    "PodDisruptionBudget": KindApi(client.PolicyV1Api, "namespaced_pod_disruption_budget"),
    "NetworkPolicy": KindApi(client.NetworkingV1Api, "namespaced_network_policy"),
    "CronJob": KindApi(client.BatchV1Api, "namespaced_cron_job"),
    "Job": KindApi(client.BatchV1Api, "namespaced_job"),
    "ResourceQuota": KindApi(client.CoreV1Api, "namespaced_resource_quota"),
    "StorageClass": KindApi(client.StorageV1Api, "storage_class", namespaced=False),
    "RoleBinding": KindApi(client.RbacAuthorizationV1Api, "namespaced_role_binding"),
    "ClusterRoleBinding": KindApi(client.RbacAuthorizationV1Api, "cluster_role_binding", namespaced=False),
}


@dataclass(frozen=True)
class CustomKind:
    """A custom resource (served once its CRD is installed), read through CustomObjectsApi."""

    group: str
    version: str
    plural: str
    namespaced: bool = True


CUSTOM_KINDS: dict[str, CustomKind] = {
    "MachineDeployment": CustomKind("cluster.x-k8s.io", "v1beta1", "machinedeployments"),
    "MachineSet": CustomKind("cluster.x-k8s.io", "v1beta1", "machinesets"),
    "Machine": CustomKind("cluster.x-k8s.io", "v1beta1", "machines"),
    "Certificate": CustomKind("cert-manager.io", "v1", "certificates"),
}


def _custom_args(kind: CustomKind, namespace: str | None, name: str) -> tuple[str, ...]:
    if kind.namespaced:
        return (kind.group, kind.version, namespace or "default", kind.plural, name)
    return (kind.group, kind.version, kind.plural, name)


def _custom_call(api_client: client.ApiClient, verb: str, kind: CustomKind) -> Any:
    scope = "namespaced_custom_object" if kind.namespaced else "cluster_custom_object"
    return getattr(client.CustomObjectsApi(api_client), f"{verb}_{scope}")


def describe(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind.lower()} {namespace}/{name}" if namespace else f"{kind.lower()} {name}"


def _args(kind: KindApi, namespace: str | None, name: str) -> tuple[str, ...]:
    return (name, namespace or "default") if kind.namespaced else (name,)


def read_object(api_client: client.ApiClient, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
    """The object as the API serves it (camelCase JSON); NotFound when it does not exist."""
    if kind in CUSTOM_KINDS:
        custom = CUSTOM_KINDS[kind]
        with api_errors(describe(kind, namespace, name)):
            get = _custom_call(api_client, "get", custom)
            found: dict[str, Any] = get(*_custom_args(custom, namespace, name))
        return found
    spec = KINDS[kind]
    api = spec.api(api_client)
    with api_errors(describe(kind, namespace, name)):
        obj = getattr(api, f"read_{spec.suffix}")(*_args(spec, namespace, name))
    data: dict[str, Any] = api_client.sanitize_for_serialization(obj)
    return data


def find_object(
    api_client: client.ApiClient, kind: str, namespace: str | None, name: str
) -> dict[str, Any] | None:
    try:
        return read_object(api_client, kind, namespace, name)
    except NotFound:
        return None


def patch_object(
    api_client: client.ApiClient,
    kind: str,
    namespace: str | None,
    name: str,
    body: Any,
    content_type: str,
    extra: dict[str, str],
) -> dict[str, Any]:
    if kind in CUSTOM_KINDS:
        custom = CUSTOM_KINDS[kind]
        with api_errors(describe(kind, namespace, name)):
            patched: dict[str, Any] = _custom_call(api_client, "patch", custom)(
                *_custom_args(custom, namespace, name), body, _content_type=content_type, **extra
            )
        return patched
    spec = KINDS[kind]
    api = spec.api(api_client)
    with api_errors(describe(kind, namespace, name)):
        obj = getattr(api, f"patch_{spec.suffix}")(
            *_args(spec, namespace, name), body, _content_type=content_type, **extra
        )
    data: dict[str, Any] = api_client.sanitize_for_serialization(obj)
    return data
