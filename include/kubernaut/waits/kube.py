"""Reads (and the drain's evictions) through kubernetes_asyncio, with the synchronous
helpers' error messages: 404 is ``NotFound`` naming the object, an unreachable or failing
API server is a ``RetryableWaitError`` (the wait looks again), anything else a KubeError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernaut.kube.errors import Forbidden, KubeError, NotFound, _reason
from kubernaut.kube.objects import describe
from kubernaut.waits.clients import RetryableWaitError, WaitClients

# kind -> (API class name in kubernetes_asyncio.client, method suffix, namespaced)
KINDS: dict[str, tuple[str, str, bool]] = {
    "Pod": ("CoreV1Api", "namespaced_pod", True),
    "Node": ("CoreV1Api", "node", False),
    "PersistentVolumeClaim": ("CoreV1Api", "namespaced_persistent_volume_claim", True),
    "Deployment": ("AppsV1Api", "namespaced_deployment", True),
    "StatefulSet": ("AppsV1Api", "namespaced_stateful_set", True),
    "DaemonSet": ("AppsV1Api", "namespaced_daemon_set", True),
    "ReplicaSet": ("AppsV1Api", "namespaced_replica_set", True),
}


@contextmanager
def api_errors(what: str) -> Iterator[None]:
    import aiohttp
    from kubernetes_asyncio.client.exceptions import ApiException

    try:
        yield
    except ApiException as exc:
        status = exc.status or 0
        if status == 404:
            raise NotFound(f"{what} not found") from exc
        if status in (0, 401, 429) or status >= 500:  # 401: expired exec credentials, read again
            raise RetryableWaitError(f"{what}: API error {status}: {_reason(exc)}", status=status) from exc
        if status == 403:
            raise Forbidden(f"{what}: access denied ({status}): {_reason(exc)}") from exc
        raise KubeError(f"{what}: API error {status}: {_reason(exc)}") from exc
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise RetryableWaitError(f"{what}: API server unreachable: {type(exc).__name__}: {exc}") from exc


def _api(api_client: Any, kind: str) -> tuple[Any, str, bool]:
    from kubernetes_asyncio import client

    api_name, suffix, namespaced = KINDS[kind]
    return getattr(client, api_name)(api_client), suffix, namespaced


async def read(clients: WaitClients, kind: str, namespace: str | None, name: str) -> Any:
    """The typed object (kubernetes_asyncio model); NotFound when it does not exist."""
    api_client = await clients.kube()
    api, suffix, namespaced = _api(api_client, kind)
    args = (name, namespace or "default") if namespaced else (name,)
    with api_errors(describe(kind, namespace, name)):
        return await getattr(api, f"read_{suffix}")(*args)


async def read_dict(clients: WaitClients, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
    """The object as the API serves it (camelCase JSON)."""
    obj = await read(clients, kind, namespace, name)
    data: dict[str, Any] = (await clients.kube()).sanitize_for_serialization(obj)
    return data


async def find(clients: WaitClients, kind: str, namespace: str | None, name: str) -> Any | None:
    try:
        return await read(clients, kind, namespace, name)
    except NotFound:
        return None


async def read_pod_seen(clients: WaitClients, namespace: str, name: str) -> tuple[Any | None, Any]:
    """The pod (None if it does not exist) and the API server's time of that answer."""
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    from kubernaut.kube.pods import server_time

    core = client.CoreV1Api(await clients.kube())
    with api_errors(f"pod {namespace}/{name}"):
        try:
            pod, _, headers = await core.read_namespaced_pod_with_http_info(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None, server_time(getattr(exc, "headers", None))
            raise
    return pod, server_time(headers)


async def list_pods(
    clients: WaitClients,
    namespace: str | None,
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
    what: str,
) -> list[Any]:
    from kubernetes_asyncio import client

    core = client.CoreV1Api(await clients.kube())
    options: dict[str, Any] = {
        k: v for k, v in (("label_selector", label_selector), ("field_selector", field_selector)) if v
    }
    with api_errors(what):
        if namespace is None:
            result = await core.list_pod_for_all_namespaces(**options)
        else:
            result = await core.list_namespaced_pod(namespace, **options)
    return list(result.items)


async def read_custom(
    clients: WaitClients, group: str, version: str, namespace: str, plural: str, name: str, what: str
) -> dict[str, Any] | None:
    """A custom object as a dict, or None when it does not exist."""
    from kubernetes_asyncio import client

    api = client.CustomObjectsApi(await clients.kube())
    try:
        with api_errors(what):
            found: dict[str, Any] = await api.get_namespaced_custom_object(
                group, version, namespace, plural, name
            )
            return found
    except NotFound:
        return None
