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
    "StorageClass": KindApi(client.StorageV1Api, "storage_class", namespaced=False),
}


def describe(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind.lower()} {namespace}/{name}" if namespace else f"{kind.lower()} {name}"


def _args(kind: KindApi, namespace: str | None, name: str) -> tuple[str, ...]:
    return (name, namespace or "default") if kind.namespaced else (name,)


def read_object(api_client: client.ApiClient, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
    """The object as the API serves it (camelCase JSON); NotFound when it does not exist."""
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
    spec = KINDS[kind]
    api = spec.api(api_client)
    with api_errors(describe(kind, namespace, name)):
        obj = getattr(api, f"patch_{spec.suffix}")(
            *_args(spec, namespace, name), body, _content_type=content_type, **extra
        )
    data: dict[str, Any] = api_client.sanitize_for_serialization(obj)
    return data
