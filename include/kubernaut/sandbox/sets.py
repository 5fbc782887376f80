"""The StatefulSet and DaemonSet controllers of the sandbox, with ControllerRevisions.

StatefulSet (``pkg/controller/statefulset``): pods ``<set>-<ordinal>`` labelled
``controller-revision-hash: <set>-<hash>`` (the ControllerRevision's name); OrderedReady creates
one pod at a time and makes no progress while a pod is not Running and Ready; a RollingUpdate
replaces the highest-ordinal pod (down to ``partition``) that is not of the update revision, once
every pod is healthy; OnDelete replaces nothing. ``status.currentRevision`` becomes the update
revision once every pod runs it. As in a real cluster, a rollout stuck on a pod that never
becomes Ready stays stuck after the template is reverted until that pod is deleted
("forced rollback" in the StatefulSet documentation).

DaemonSet (``pkg/controller/daemon``): one pod per node, labelled ``controller-revision-hash:
<hash>``; a RollingUpdate (maxSurge 0) deletes an old pod that is not available at once and
old available pods while fewer than ``maxUnavailable`` (default 1) pods are unavailable, so
reverting a bad template replaces its crashing pods; OnDelete replaces nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubernaut.sandbox.disruption import is_pod_ready
from kubernaut.sandbox.resources import resolve
from kubernaut.sandbox.revisions import HASH_LABEL, owned_revisions, sync_revisions
from kubernaut.sandbox.store import random_suffix

if TYPE_CHECKING:
    from kubernaut.sandbox.controller import Controller

PODS, NODES = resolve("pods"), resolve("nodes")
STATEFULSETS, DAEMONSETS = resolve("statefulsets"), resolve("daemonsets")


def _ordinal(pod: dict[str, Any]) -> int:
    try:
        return int(pod["metadata"]["name"].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def _revision_label(pod: dict[str, Any]) -> str | None:
    return (pod["metadata"].get("labels") or {}).get(HASH_LABEL)


def _update_strategy(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"].get("updateStrategy") or {"type": "RollingUpdate"}


def reconcile_statefulset(ctl: Controller, statefulset: dict[str, Any]) -> None:
    from kubernaut.sandbox.controller import owner_ref

    if statefulset["metadata"].get("deletionTimestamp"):
        return
    store = ctl.store
    name = statefulset["metadata"]["name"]
    desired = int(statefulset["spec"].get("replicas", 1))
    template = statefulset["spec"].get("template") or {}
    owned = ctl._owned(PODS, statefulset)
    old_status = statefulset.get("status") or {}

    def in_use() -> set[str]:
        used = {r for r in (_revision_label(p) for p in owned) if r}
        return used | {old_status.get("currentRevision", ""), old_status.get("updateRevision", "")}

    update = sync_revisions(store, statefulset, owner_ref(statefulset), in_use)["metadata"]["name"]
    pods = {p["metadata"]["name"]: p for p in owned}
    parallel = statefulset["spec"].get("podManagementPolicy") == "Parallel"
    strategy = _update_strategy(statefulset)
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    current_revision = old_status.get("currentRevision") or update
    revisions = {r["metadata"]["name"]: r for r in owned_revisions(store, statefulset)}
    for ordinal in range(desired):
        pod_name = f"{name}-{ordinal}"
        if pod_name not in pods:
            # Below the partition a pod is recreated at the current revision, as the real controller does.
            revision = (
                update if ordinal >= partition or current_revision not in revisions else current_revision
            )
            pod_template = template
            if revision != update:
                from kubernaut.sandbox.revisions import template_of

                pod_template = template_of(revisions[revision])
            created = ctl._create_pod(
                statefulset,
                pod_template,
                pod_name,
                {
                    HASH_LABEL: revision,
                    "statefulset.kubernetes.io/pod-name": pod_name,
                    "apps.kubernetes.io/pod-index": str(ordinal),
                },
            )
            if created is not None:
                ctl.event(
                    statefulset, "SuccessfulCreate", f"create Pod {pod_name} in StatefulSet {name} successful"
                )
            if not parallel:
                break  # OrderedReady: one pod at a time
        elif not parallel and not is_pod_ready(pods[pod_name]):
            break  # OrderedReady: no progress while a pod is not Running and Ready
    live = sorted(pods.values(), key=_ordinal, reverse=True)
    # Healthy: Running and Ready and not terminating; a rolling update waits for every pod.
    all_ready = all(is_pod_ready(p) and not p["metadata"].get("deletionTimestamp") for p in live)
    for pod in live:
        if _ordinal(pod) >= desired:
            if not pod["metadata"].get("deletionTimestamp"):
                ctl._delete(PODS, pod)
                ctl.event(
                    statefulset,
                    "SuccessfulDelete",
                    f"delete Pod {pod['metadata']['name']} in StatefulSet {name} successful",
                )
            return
    if strategy.get("type", "RollingUpdate") == "RollingUpdate" and all_ready and len(live) == desired:
        for pod in live:  # highest ordinal first, down to the partition
            if _ordinal(pod) < partition:
                break
            if _revision_label(pod) != update:
                ctl._delete(PODS, pod)
                break
    pods_now = [p for p in ctl._owned(PODS, statefulset) if not p["metadata"].get("deletionTimestamp")]
    ready = sum(1 for p in pods_now if is_pod_ready(p))
    updated = sum(1 for p in pods_now if _revision_label(p) == update)
    if updated == len(pods_now) == desired and ready == desired:
        current_revision = update
    current = sum(1 for p in pods_now if _revision_label(p) == current_revision)
    status: dict[str, Any] = {
        "observedGeneration": statefulset["metadata"].get("generation", 1),
        "replicas": len(pods_now),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": update,
        "collisionCount": 0,
    }
    ctl._set_status(STATEFULSETS, statefulset, status)


def reconcile_daemonset(ctl: Controller, daemonset: dict[str, Any]) -> None:
    from kubernaut.sandbox.controller import owner_ref

    if daemonset["metadata"].get("deletionTimestamp"):
        return
    store = ctl.store
    owned = ctl._owned(PODS, daemonset)

    def in_use() -> set[str]:
        return {f"{daemonset['metadata']['name']}-{r}" for r in (_revision_label(p) for p in owned) if r}

    revision = sync_revisions(store, daemonset, owner_ref(daemonset), in_use)
    pod_hash = revision["metadata"]["labels"][HASH_LABEL]
    template = daemonset["spec"].get("template") or {}
    nodes = [n["metadata"]["name"] for n in store.list(NODES)]
    live = [p for p in owned if not p["metadata"].get("deletionTimestamp")]
    by_node: dict[str, list[dict[str, Any]]] = {}
    for pod in live:
        by_node.setdefault(pod["spec"].get("nodeName", ""), []).append(pod)
    for node in nodes:  # DaemonSet pods tolerate cordoned nodes, as in the real cluster
        if node not in by_node:
            ctl._create_pod(
                daemonset,
                template,
                f"{daemonset['metadata']['name']}-{random_suffix()}",
                {HASH_LABEL: pod_hash},
                node_name=node,
            )
    for node, node_pods in by_node.items():
        for extra in node_pods[1:] if node in nodes else node_pods:
            ctl._delete(PODS, extra)
    strategy = _update_strategy(daemonset)
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        max_unavailable = _max_unavailable(strategy, len(nodes))
        on_nodes = [p for p in live if p["spec"].get("nodeName") in nodes]
        unavailable = sum(1 for p in on_nodes if not is_pod_ready(p)) + sum(
            1 for n in nodes if n not in by_node
        )
        for pod in on_nodes:
            if _revision_label(pod) == pod_hash:
                continue
            if not is_pod_ready(pod):
                ctl._delete(PODS, pod)  # an old pod that is not available goes at once
            elif unavailable < max_unavailable:
                ctl._delete(PODS, pod)
                unavailable += 1
    pods = [p for p in ctl._owned(PODS, daemonset) if not p["metadata"].get("deletionTimestamp")]
    ready = sum(1 for p in pods if is_pod_ready(p))
    updated = sum(1 for p in pods if _revision_label(p) == pod_hash)
    status: dict[str, Any] = {
        "observedGeneration": daemonset["metadata"].get("generation", 1),
        "desiredNumberScheduled": len(nodes),
        "currentNumberScheduled": len(pods),
        "numberReady": ready,
        "numberAvailable": ready,
        "numberUnavailable": max(0, len(nodes) - ready),
        "updatedNumberScheduled": updated,
        "numberMisscheduled": 0,
    }
    ctl._set_status(DAEMONSETS, daemonset, status)


def _max_unavailable(strategy: dict[str, Any], nodes: int) -> int:
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1)
    if isinstance(value, str) and value.endswith("%"):
        return max(1, int(value[:-1]) * nodes // 100)
    return max(1, int(value))
