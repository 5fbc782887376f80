"""Rollout status, judged the way `kubectl rollout status` does: pure functions over what the
API returned, so a step (synchronous client) and a wait in the triggerer (kubernetes_asyncio,
whose models have the same attributes) judge alike."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from kubernaut.kube.errors import api_errors
from kubernaut.kube.pods import is_ready, selector_string


def _crashing(pods: list[Any]) -> list[str]:
    return sorted(
        p.metadata.name
        for p in pods
        for cs in (p.status.container_statuses or [] if p.status else [])
        if cs.state and cs.state.waiting and cs.state.waiting.reason in {"CrashLoopBackOff", "Error"}
    )


def judge_deployment(dep: Any, pods: list[Any]) -> dict[str, Any]:
    """A Deployment (typed model) and the pods its selector matches."""
    spec, status = dep.spec, dep.status
    desired = spec.replicas if spec.replicas is not None else 1
    live = [p for p in pods if p.metadata.deletion_timestamp is None]
    crashing = _crashing(live)
    ready_pods = sum(1 for p in live if is_ready(p))
    observed = ((status.observed_generation if status else None) or 0) >= (dep.metadata.generation or 0)
    updated = (status.updated_replicas if status else None) or 0
    available = (status.available_replicas if status else None) or 0
    complete = (
        observed
        and updated >= desired
        and ((status.replicas if status else None) or 0) == updated
        and available >= desired
        and ready_pods >= desired
        and not crashing
    )
    return {
        "desired": desired,
        "updated": updated,
        "ready": (status.ready_replicas if status else None) or 0,
        "available": available,
        "readyPods": ready_pods,
        "crashing": crashing,
        "observedGeneration": observed,
        "complete": complete,
    }


def judge_workload(kind: str, obj: dict[str, Any], pods: list[Any]) -> dict[str, Any]:
    """A StatefulSet or DaemonSet (as the API serves it, camelCase) and its selector's pods."""
    status, generation = obj.get("status") or {}, obj["metadata"].get("generation") or 0
    observed = (status.get("observedGeneration") or 0) >= generation
    if kind == "StatefulSet":
        desired = int(obj["spec"].get("replicas", 1))
        updated, ready = int(status.get("updatedReplicas") or 0), int(status.get("readyReplicas") or 0)
        current = int(status.get("replicas") or 0)
    else:
        desired = int(status.get("desiredNumberScheduled") or 0)
        updated, ready = int(status.get("updatedNumberScheduled") or 0), int(status.get("numberReady") or 0)
        current = int(status.get("currentNumberScheduled") or 0)
    live = [p for p in pods if p.metadata.deletion_timestamp is None]
    ready_pods = sum(1 for p in live if is_ready(p))
    complete = (
        observed and updated >= desired and current == desired and ready >= desired and ready_pods >= desired
    )
    return {
        "desired": desired,
        "updated": updated,
        "ready": ready,
        "readyPods": ready_pods,
        "complete": complete,
    }


def selector_of(obj: Any) -> str:
    """The label selector of a workload, typed model or API dict."""
    if isinstance(obj, dict):
        return selector_string((obj["spec"].get("selector") or {}).get("matchLabels"))
    return selector_string(obj.spec.selector.match_labels)


def rollout_status(core: client.CoreV1Api, dep: client.V1Deployment) -> dict[str, Any]:
    namespace, name = dep.metadata.namespace, dep.metadata.name
    with api_errors(f"pods of deployment {namespace}/{name}"):
        pods = core.list_namespaced_pod(namespace, label_selector=selector_of(dep)).items
    return judge_deployment(dep, pods)
