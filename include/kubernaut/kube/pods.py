"""Pod state as people read it, and the owner chain Pod -> ReplicaSet -> Deployment."""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from kubernaut.kube.errors import NotFound, api_errors


@dataclass(frozen=True)
class Owner:
    kind: str
    name: str
    uid: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "uid": self.uid}


def controller_of(meta: client.V1ObjectMeta) -> Owner | None:
    for ref in meta.owner_references or []:
        if ref.controller:
            return Owner(kind=ref.kind, name=ref.name, uid=ref.uid)
    return None


def is_ready(pod: client.V1Pod) -> bool:
    if pod.metadata.deletion_timestamp is not None or not pod.status:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


OOM_KILLED = "OOMKilled"


def rfc3339(moment: datetime.datetime | None) -> str | None:
    """A timestamp as the API prints it (UTC, whole seconds)."""
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def container_summaries(pod: client.V1Pod) -> list[dict[str, Any]]:
    """Each container's state, restarts and how its current or last instance terminated."""
    statuses = pod.status.container_statuses or [] if pod.status else []
    containers = []
    for cs in statuses:
        state, reason = "unknown", ""
        if cs.state and cs.state.waiting:
            state, reason = "waiting", cs.state.waiting.reason or ""
        elif cs.state and cs.state.running:
            state = "running"
        elif cs.state and cs.state.terminated:
            state, reason = "terminated", cs.state.terminated.reason or ""
        last, exit_code = "", None
        if cs.last_state and cs.last_state.terminated:
            last, exit_code = cs.last_state.terminated.reason or "", cs.last_state.terminated.exit_code
        containers.append(
            {
                "name": cs.name,
                "ready": bool(cs.ready),
                "restartCount": cs.restart_count or 0,
                "state": state,
                "reason": reason,
                "lastTerminationReason": last,
                "lastExitCode": exit_code,
                # Killed by the kernel for exceeding its memory limit, now or in its last instance.
                "oomKilled": OOM_KILLED in (last, reason if state == "terminated" else ""),
            }
        )
    return containers


def pod_summary(pod: client.V1Pod) -> dict[str, Any]:
    containers = container_summaries(pod)
    owner = controller_of(pod.metadata)
    return {
        "name": pod.metadata.name,
        "namespace": pod.metadata.namespace,
        "uid": pod.metadata.uid,
        "created": rfc3339(pod.metadata.creation_timestamp),
        "phase": pod.status.phase if pod.status else None,
        "ready": is_ready(pod),
        "restarts": sum(c["restartCount"] for c in containers),
        "waitingReasons": sorted({c["reason"] for c in containers if c["state"] == "waiting"}),
        "containers": containers,
        "oomKilled": [c["name"] for c in containers if c["oomKilled"]],
        "node": pod.spec.node_name if pod.spec else None,
        "owner": owner.to_dict() if owner else None,
    }


def read_pod(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod | None:
    try:
        with api_errors(f"pod {namespace}/{name}"):
            return core.read_namespaced_pod(name, namespace)
    except NotFound:
        return None


def server_time(headers: Mapping[str, str] | None) -> datetime.datetime:
    """When the API server answered (its Date header: the clock its creationTimestamps come
    from, in whole seconds); the local clock if the header is missing."""
    value = (headers or {}).get("Date")
    if value:
        try:
            return email.utils.parsedate_to_datetime(value).astimezone(datetime.UTC)
        except (TypeError, ValueError):
            pass
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def read_pod_seen(
    core: client.CoreV1Api, namespace: str, name: str
) -> tuple[client.V1Pod | None, datetime.datetime]:
    """The pod (None if it does not exist) and the API server's time of that answer."""
    try:
        with api_errors(f"pod {namespace}/{name}"):
            pod, _, headers = core.read_namespaced_pod_with_http_info(name, namespace)
    except NotFound as exc:
        return None, server_time(getattr(exc.__cause__, "headers", None))
    return pod, server_time(headers)


def selector_string(match_labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((match_labels or {}).items()))


def deployment_of_replicaset(apps: client.AppsV1Api, namespace: str, rs_name: str) -> str | None:
    try:
        with api_errors(f"replicaset {namespace}/{rs_name}"):
            rs = apps.read_namespaced_replica_set(rs_name, namespace)
    except NotFound:
        return None
    owner = controller_of(rs.metadata)
    return owner.name if owner and owner.kind == "Deployment" else None


def guess_replicaset_name(pod_name: str) -> str | None:
    """Pods of a ReplicaSet are named ``<replicaset>-<5 chars>``."""
    head, sep, tail = pod_name.rpartition("-")
    return head if sep and len(tail) == 5 else None


def owner_pods(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str, owner: Owner
) -> list[client.V1Pod]:
    """Pods currently managed by ``owner``, following a ReplicaSet up to its Deployment so that
    pods from a newer ReplicaSet (after a rollout) count as replacements too."""
    selector: dict[str, str] | None = None
    if owner.kind == "ReplicaSet":
        deployment = deployment_of_replicaset(apps, namespace, owner.name)
        if deployment is not None:
            owner = Owner("Deployment", deployment, "")
        else:
            with api_errors(f"replicaset {namespace}/{owner.name}"):
                selector = apps.read_namespaced_replica_set(owner.name, namespace).spec.selector.match_labels
    if owner.kind == "Deployment":
        with api_errors(f"deployment {namespace}/{owner.name}"):
            selector = apps.read_namespaced_deployment(owner.name, namespace).spec.selector.match_labels
    elif owner.kind == "StatefulSet":
        with api_errors(f"statefulset {namespace}/{owner.name}"):
            selector = apps.read_namespaced_stateful_set(owner.name, namespace).spec.selector.match_labels
    elif owner.kind == "DaemonSet":
        with api_errors(f"daemonset {namespace}/{owner.name}"):
            selector = apps.read_namespaced_daemon_set(owner.name, namespace).spec.selector.match_labels
    if not selector:
        return []
    with api_errors(f"pods of {owner.kind.lower()} {namespace}/{owner.name}"):
        pods = core.list_namespaced_pod(namespace, label_selector=selector_string(selector)).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def sanitized_manifest(api: client.ApiClient, obj: Any) -> dict[str, Any]:
    """The object as a manifest that can be created again (server-set fields dropped)."""
    data: dict[str, Any] = api.sanitize_for_serialization(obj)
    meta = data.get("metadata", {})
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "selfLink"):
        meta.pop(key, None)
    data.pop("status", None)
    return data


def read_log(core: client.CoreV1Api, namespace: str, pod: str, **options: Any) -> str:
    """A container log as text. The raw body is read because the client's preloaded
    str() of the log bytes yields "b'...'" (kubernetes client 36)."""
    response = core.read_namespaced_pod_log(pod, namespace, _preload_content=False, **options)
    return str(response.data.decode("utf-8", errors="replace"))
