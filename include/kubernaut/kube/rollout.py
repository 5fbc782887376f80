"""Deployment rollout status, judged the way `kubectl rollout status` does."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from kubernaut.kube.errors import api_errors
from kubernaut.kube.pods import is_ready, selector_string


def rollout_status(core: client.CoreV1Api, dep: client.V1Deployment) -> dict[str, Any]:
    spec, status = dep.spec, dep.status or client.V1DeploymentStatus()
    desired = spec.replicas if spec.replicas is not None else 1
    namespace, name = dep.metadata.namespace, dep.metadata.name
    with api_errors(f"pods of deployment {namespace}/{name}"):
        pods = core.list_namespaced_pod(
            namespace, label_selector=selector_string(spec.selector.match_labels)
        ).items
    live = [p for p in pods if p.metadata.deletion_timestamp is None]
    crashing = sorted(
        p.metadata.name
        for p in live
        for cs in (p.status.container_statuses or [] if p.status else [])
        if cs.state and cs.state.waiting and cs.state.waiting.reason in {"CrashLoopBackOff", "Error"}
    )
    ready_pods = sum(1 for p in live if is_ready(p))
    observed = (status.observed_generation or 0) >= (dep.metadata.generation or 0)
    updated = status.updated_replicas or 0
    available = status.available_replicas or 0
    complete = (
        observed
        and updated >= desired
        and (status.replicas or 0) == updated
        and available >= desired
        and ready_pods >= desired
        and not crashing
    )
    return {
        "desired": desired,
        "updated": updated,
        "ready": status.ready_replicas or 0,
        "available": available,
        "readyPods": ready_pods,
        "crashing": crashing,
        "observedGeneration": observed,
        "complete": complete,
    }
