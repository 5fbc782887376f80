"""
A tiny, polling stand-in for kube-controller-manager, the scheduler and the kubelets.

Each tick reconciles the whole store: Deployments -> ReplicaSets -> Pods, StatefulSets, DaemonSets,
Jobs, scheduling, the pod lifecycle (Pending -> Running/Ready, or faulty), PDB/Endpoints status,
and garbage collection of orphans. Writes happen only on real changes, so watches stay quiet.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from kubernaut.sandbox import app_faults, batch, capi, certmanager, nodedisk, quota, sets
from kubernaut.sandbox.disruption import compute_budget, is_pod_ready
from kubernaut.sandbox.errors import ApiError
from kubernaut.sandbox.faults import FaultBook
from kubernaut.sandbox.logs import LogBook
from kubernaut.sandbox.resources import ResourceSpec, resolve
from kubernaut.sandbox.selectors import label_selector_from_object, labels_match
from kubernaut.sandbox.storage import reconcile_claims, reconcile_snapshots
from kubernaut.sandbox.store import Store, now_rfc3339, random_suffix

logger = logging.getLogger(__name__)

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

PODS, NODES, NAMESPACES = resolve("pods"), resolve("nodes"), resolve("namespaces")
DEPLOYMENTS, REPLICASETS = resolve("deployments"), resolve("replicasets")
STATEFULSETS, DAEMONSETS, JOBS = resolve("statefulsets"), resolve("daemonsets"), resolve("jobs")
PDBS, SERVICES, ENDPOINTS = resolve("poddisruptionbudgets"), resolve("services"), resolve("endpoints")
EVENTS, SERVICEACCOUNTS = resolve("events"), resolve("serviceaccounts")
CRONJOBS = resolve("cronjobs")


def template_hash(template: dict[str, Any]) -> str:
    """A short stable hash of a pod template (ignoring the hash label itself), like the real one."""
    clean = copy.deepcopy(template)
    (clean.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    digest = hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).digest()
    return "".join(_HASH_ALPHABET[b % len(_HASH_ALPHABET)] for b in digest[:10])


def owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def revision_of(obj: dict[str, Any]) -> int:
    return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0") or 0)


def condition(
    type_: str,
    status: bool,
    reason: str = "",
    message: str = "",
    previous: list[dict[str, Any]] | None = None,
    with_update_time: bool = False,
) -> dict[str, Any]:
    """A status condition that keeps its timestamps while its status/reason do not change."""
    value = "True" if status else "False"
    old = next((c for c in previous or [] if c.get("type") == type_), None)
    same = old is not None and old.get("status") == value and old.get("reason", "") == reason
    stamp = old.get("lastTransitionTime") if same and old else now_rfc3339()
    result: dict[str, Any] = {"type": type_, "status": value, "lastTransitionTime": stamp}
    if with_update_time:
        result["lastUpdateTime"] = old.get("lastUpdateTime", stamp) if same and old else stamp
    else:
        result["lastProbeTime"] = None
    if reason:
        result["reason"] = reason
    if message:
        result["message"] = message
    return result


@dataclass
class PodRuntime:
    """What a kubelet remembers about a pod between ticks (not part of the API object)."""

    scheduled_at: float = field(default_factory=time.monotonic)
    started: str | None = None
    # Per container, as a kubelet reports them: a crash restarts only the container that died.
    restarts: dict[str, int] = field(default_factory=dict)
    container_started: dict[str, str] = field(default_factory=dict)
    last_terminated: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_crash: float = 0.0
    crashed_once: bool = False
    unready_logged: bool = False
    image_pull_failed: float | None = None  # when the kubelet first failed to pull an image


class Controller:
    def __init__(
        self,
        store: Store,
        logs: LogBook,
        faults: FaultBook,
        *,
        pod_ready_delay: float = 0.3,
        crash_interval: float = 1.0,
        tick: float = 0.1,
        pod_stop_delay: float | None = None,
    ) -> None:
        """``pod_stop_delay``: how long a kubelet takes to stop a deleted pod's containers
        (default: ``pod_ready_delay``), plus any preStop sleep, within the grace period."""
        self.store = store
        self.logs = logs
        self.faults = faults
        self.pod_ready_delay = pod_ready_delay
        self.pod_stop_delay = pod_ready_delay if pod_stop_delay is None else pod_stop_delay
        self._terminating: dict[str, float] = {}  # pod uid -> when its kubelet began stopping it
        self.crash_interval = crash_interval
        self.tick = tick
        self._runtime: dict[str, PodRuntime] = {}
        self._ip_counter = 10
        # Deployment uid -> (what its rollout had reached, when it last got further)
        self._progress: dict[str, tuple[tuple[Any, ...], float]] = {}

    async def run(self) -> None:
        while True:
            try:
                self.reconcile_once()
            except Exception:  # a controller bug must not kill the whole sandbox
                logger.exception("Sandbox controller reconciliation failed")
            await asyncio.sleep(self.tick)

    def reconcile_once(self) -> None:
        self._namespaces()
        self._nodes()
        self._garbage_collect()
        for deployment in self.store.list(DEPLOYMENTS):
            self._deployment(deployment)
        for replicaset in self.store.list(REPLICASETS):
            self._replicaset(replicaset)
        for statefulset in self.store.list(STATEFULSETS):
            self._statefulset(statefulset)
        for daemonset in self.store.list(DAEMONSETS):
            self._daemonset(daemonset)
        for cronjob in self.store.list(CRONJOBS):
            batch.reconcile_cronjob(self, cronjob)
        for job in self.store.list(JOBS):
            self._job(job)
        self._capture_faults()
        self._schedule()
        for pod in self.store.list(PODS):
            self._kubelet(pod)
        for replicaset in self.store.list(REPLICASETS):
            self._replicaset_status(replicaset)
        for deployment in self.store.list(DEPLOYMENTS):
            self._deployment_status(deployment)
        self._disruption_budgets()
        self._endpoints()
        reconcile_claims(self.store, self._set_status)
        reconcile_snapshots(self.store, self._set_status)
        quota.reconcile_quotas(self.store, self._set_status)
        capi.reconcile(self)
        certmanager.reconcile(self)
        nodedisk.reconcile(self)

    # --- helpers --------------------------------------------------------------------------------

    def _write(self, spec: ResourceSpec, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        new = copy.deepcopy(obj)
        new["metadata"].pop("resourceVersion", None)
        return self.store.update(
            spec, meta.get("namespace"), meta["name"], new, check_version=False, keep_status=True
        )

    def _set_status(self, spec: ResourceSpec, obj: dict[str, Any], status: dict[str, Any]) -> None:
        if obj.get("status") != status:
            self.store.update(
                spec,
                obj["metadata"].get("namespace"),
                obj["metadata"]["name"],
                {"status": status},
                subresource="status",
                check_version=False,
            )

    def _owned(self, spec: ResourceSpec, owner: dict[str, Any]) -> list[dict[str, Any]]:
        uid = owner["metadata"]["uid"]
        return [o for o in self.store.list(spec, owner["metadata"]["namespace"]) if controller_uid(o) == uid]

    def _delete(
        self, spec: ResourceSpec, obj: dict[str, Any], grace_period_seconds: int | None = None
    ) -> None:
        """Delete as a controller does: a running pod gracefully (its kubelet finishes it)."""
        meta = obj["metadata"]
        gone = False
        if self.store.get(spec, meta.get("namespace"), meta["name"]) is not None:
            _, gone = self.store.delete(
                spec, meta.get("namespace"), meta["name"], grace_period_seconds=grace_period_seconds
            )
        if spec is PODS and gone:
            self._forget_pod(meta)

    def _forget_pod(self, meta: dict[str, Any]) -> None:
        self._runtime.pop(meta["uid"], None)
        self._terminating.pop(meta["uid"], None)
        self.logs.forget_pod(meta["namespace"], meta["name"])

    def event(self, involved: dict[str, Any], reason: str, message: str, type_: str = "Normal") -> None:
        """Record an Event, aggregated per object+reason like the real event recorder does."""
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        suffix = hashlib.sha256(f"{meta['uid']}/{reason}".encode()).hexdigest()[:16]
        name = f"{meta['name']}.{suffix}"
        now = now_rfc3339()
        existing = self.store.get(EVENTS, namespace, name)
        if existing is not None:
            updated = copy.deepcopy(existing)
            updated.update(count=int(existing.get("count", 1)) + 1, lastTimestamp=now, message=message)
            self._write(EVENTS, updated)
            return
        if self.store.get(NAMESPACES, None, namespace) is None:
            return
        self.store.create(
            EVENTS,
            {
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {
                    "kind": involved["kind"],
                    "apiVersion": involved["apiVersion"],
                    "name": meta["name"],
                    "namespace": meta.get("namespace"),
                    "uid": meta["uid"],
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": "sandbox-controller"},
                "reportingComponent": "sandbox-controller",
            },
        )

    # --- cluster basics -------------------------------------------------------------------------

    def _namespaces(self) -> None:
        for namespace in self.store.list(NAMESPACES):
            name = namespace["metadata"]["name"]
            if (
                not namespace["metadata"].get("deletionTimestamp")
                and self.store.get(SERVICEACCOUNTS, name, "default") is None
            ):
                self.store.create(SERVICEACCOUNTS, {"metadata": {"name": "default"}}, name)

    def _nodes(self) -> None:
        for node in self.store.list(NODES):
            if any(c.get("type") == "Ready" for c in (node.get("status") or {}).get("conditions") or []):
                continue
            name = node["metadata"]["name"]
            capacity = {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "50Gi"}
            self._set_status(
                NODES,
                node,
                {
                    "conditions": [
                        condition("Ready", True, "KubeletReady", "kubelet is posting ready status"),
                        condition("MemoryPressure", False, "KubeletHasSufficientMemory"),
                        condition("DiskPressure", False, "KubeletHasNoDiskPressure"),
                        condition("PIDPressure", False, "KubeletHasSufficientPID"),
                    ],
                    "capacity": capacity,
                    "allocatable": capacity,
                    "addresses": [
                        {"type": "InternalIP", "address": _node_ip(name)},
                        {"type": "Hostname", "address": name},
                    ],
                    "nodeInfo": {
                        "kubeletVersion": "v1.33.0",
                        "kubeProxyVersion": "v1.33.0",
                        "containerRuntimeVersion": "containerd://1.7.0",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                        "osImage": "Sandbox Linux",
                        "kernelVersion": "6.1.0",
                        "machineID": "",
                        "systemUUID": "",
                        "bootID": "",
                    },
                },
            )

    def _garbage_collect(self) -> None:
        uids = {obj["metadata"]["uid"] for _, obj in self.store.items()}
        node_names = {node["metadata"]["name"] for node in self.store.list(NODES)}
        for (storage_key, _, _), obj in self.store.items():
            refs = obj["metadata"].get("ownerReferences") or []
            spec = resolve(storage_key)
            if refs and not any(ref.get("uid") in uids for ref in refs):
                self._delete(spec, obj)  # background cascading deletion of orphans
            elif spec is PODS and obj["spec"].get("nodeName") and obj["spec"]["nodeName"] not in node_names:
                self._delete(spec, obj, 0)  # the pod GC force-deletes pods bound to vanished nodes

    # --- deployments ----------------------------------------------------------------------------

    def _deployment(self, deployment: dict[str, Any]) -> None:
        if deployment["metadata"].get("deletionTimestamp"):
            return
        spec = deployment["spec"]
        template = spec.get("template") or {}
        desired = int(spec.get("replicas", 1))
        pod_hash = template_hash(template)
        replicasets = self._owned(REPLICASETS, deployment)
        max_revision = max((revision_of(rs) for rs in replicasets), default=0)
        current = next(
            (rs for rs in replicasets if rs["metadata"].get("labels", {}).get(HASH_LABEL) == pod_hash), None
        )
        if current is None:
            current = self._create_replicaset(deployment, template, pod_hash, max_revision + 1, desired)
            replicasets.append(current)
        elif revision_of(current) < max_revision:  # a rollback to an older template reuses its RS
            current = copy.deepcopy(current)
            current["metadata"].setdefault("annotations", {})[REVISION] = str(max_revision + 1)
            current = self._write(REPLICASETS, current)
            self.event(
                deployment,
                "ScalingReplicaSet",
                f"Rolled back deployment {deployment['metadata']['name']} to ReplicaSet "
                f"{current['metadata']['name']}",
            )
        revision = str(revision_of(current))
        if (deployment["metadata"].get("annotations") or {}).get(REVISION) != revision:
            updated = copy.deepcopy(deployment)
            updated["metadata"].setdefault("annotations", {})[REVISION] = revision
            deployment = self._write(DEPLOYMENTS, updated)
        if spec.get("paused"):
            return

        # Rolling update with 100% surge: old replicas go away as soon as new ones are available.
        new_available = int((current.get("status") or {}).get("availableReplicas", 0))
        self._scale(current, desired, deployment)
        remaining = max(0, desired - new_available)
        olds = sorted(
            (rs for rs in replicasets if rs["metadata"]["uid"] != current["metadata"]["uid"]),
            key=revision_of,
            reverse=True,
        )
        for old in olds:
            keep = min(remaining, int(old["spec"].get("replicas", 0)))
            remaining -= keep
            self._scale(old, keep, deployment)
        history_limit = int(spec.get("revisionHistoryLimit", 10))
        idle = [
            rs
            for rs in olds
            if int(rs["spec"].get("replicas", 0)) == 0
            and int((rs.get("status") or {}).get("replicas", 0)) == 0
        ]
        for stale in idle[history_limit:]:
            self._delete(REPLICASETS, stale)

    def _scale(self, replicaset: dict[str, Any], replicas: int, deployment: dict[str, Any]) -> None:
        live = self.store.get(
            REPLICASETS, replicaset["metadata"]["namespace"], replicaset["metadata"]["name"]
        )
        if live is None or int(live["spec"].get("replicas", 1)) == replicas:
            return
        old = int(live["spec"].get("replicas", 1))
        updated = copy.deepcopy(live)
        updated["spec"]["replicas"] = replicas
        self._write(REPLICASETS, updated)
        verb = "up" if replicas > old else "down"
        self.event(
            deployment,
            "ScalingReplicaSet",
            f"Scaled {verb} replica set {live['metadata']['name']} from {old} to {replicas}",
        )

    def _create_replicaset(
        self,
        deployment: dict[str, Any],
        template: dict[str, Any],
        pod_hash: str,
        revision: int,
        replicas: int,
    ) -> dict[str, Any]:
        template = copy.deepcopy(template)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(deployment["spec"].get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        name = f"{deployment['metadata']['name']}-{pod_hash}"
        replicaset = self.store.create(
            REPLICASETS,
            {
                "metadata": {
                    "name": name,
                    "labels": dict(template["metadata"]["labels"]),
                    "annotations": {
                        REVISION: str(revision),
                        "deployment.kubernetes.io/desired-replicas": str(replicas),
                        "deployment.kubernetes.io/max-replicas": str(replicas * 2),
                    },
                    "ownerReferences": [owner_ref(deployment)],
                },
                "spec": {
                    "replicas": replicas,
                    "selector": selector,
                    "template": template,
                    "minReadySeconds": deployment["spec"].get("minReadySeconds", 0),
                },
            },
            deployment["metadata"]["namespace"],
        )
        self.event(deployment, "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {replicas}")
        return replicaset

    def _deployment_status(self, deployment: dict[str, Any]) -> None:
        replicasets = self._owned(REPLICASETS, deployment)
        pod_hash = template_hash(deployment["spec"].get("template") or {})
        current = next(
            (rs for rs in replicasets if rs["metadata"].get("labels", {}).get(HASH_LABEL) == pod_hash), None
        )
        desired = int(deployment["spec"].get("replicas", 1))

        def total(field_name: str, sets: list[dict[str, Any]]) -> int:
            return sum(int((rs.get("status") or {}).get(field_name, 0)) for rs in sets)

        replicas = total("replicas", replicasets)
        updated = total("replicas", [current]) if current else 0
        ready, available = total("readyReplicas", replicasets), total("availableReplicas", replicasets)
        old_conditions = (deployment.get("status") or {}).get("conditions")
        rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = rolling.get("maxUnavailable", "25%")
        if isinstance(max_unavailable, str) and max_unavailable.endswith("%"):
            allowed = int(max_unavailable[:-1]) * desired // 100  # rounded down, as the real controller
        else:
            allowed = int(max_unavailable)
        is_available = available >= desired - allowed
        complete = updated == desired and replicas == desired and available == desired
        rs_name = current["metadata"]["name"] if current else ""
        status: dict[str, Any] = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(0, replicas - available),
            "conditions": [
                condition(
                    "Available",
                    is_available,
                    "MinimumReplicasAvailable" if is_available else "MinimumReplicasUnavailable",
                    "Deployment has minimum availability."
                    if is_available
                    else "Deployment does not have minimum availability.",
                    old_conditions,
                    True,
                ),
                self._progressing(deployment, rs_name, complete, (rs_name, updated, ready, available)),
            ],
        }
        status = {k: v for k, v in status.items() if v != 0 or k in ("observedGeneration", "replicas")}
        self._set_status(DEPLOYMENTS, deployment, status)

    def _progressing(
        self, deployment: dict[str, Any], rs_name: str, complete: bool, reached: tuple[Any, ...]
    ) -> dict[str, Any]:
        """The Progressing condition: False with ProgressDeadlineExceeded once an incomplete,
        unpaused rollout has not got further for ``progressDeadlineSeconds`` (default 600)."""
        old = (deployment.get("status") or {}).get("conditions")
        uid, now = deployment["metadata"]["uid"], time.monotonic()
        last = self._progress.get(uid)
        if last is None or last[0] != reached:
            self._progress[uid] = last = (reached, now)
        deadline = float(deployment["spec"].get("progressDeadlineSeconds", 600))
        if complete:
            return condition(
                "Progressing",
                True,
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                old,
                True,
            )
        if deployment["spec"].get("paused"):
            self._progress[uid] = (reached, now)  # a paused rollout is not timed
        elif now - last[1] > deadline:
            return condition(
                "Progressing",
                False,
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
                old,
                True,
            )
        return condition(
            "Progressing", True, "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.', old, True
        )

    # --- replicasets & pods ---------------------------------------------------------------------

    def _replicaset(self, replicaset: dict[str, Any]) -> None:
        if replicaset["metadata"].get("deletionTimestamp"):
            return
        pods = [p for p in self._owned(PODS, replicaset) if not p["metadata"].get("deletionTimestamp")]
        desired = int(replicaset["spec"].get("replicas", 1))
        for _ in range(desired - len(pods)):
            pod = self._create_pod(
                replicaset,
                replicaset["spec"].get("template") or {},
                f"{replicaset['metadata']['name']}-{random_suffix()}",
            )
            if pod is None:
                break
            self.event(replicaset, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
        if len(pods) > desired:
            # The real controller prefers deleting unscheduled, then not-ready, then the youngest pods.
            def victim_rank(pod: dict[str, Any]) -> tuple[int, int, str]:
                return (
                    bool(pod["spec"].get("nodeName")),
                    is_pod_ready(pod),
                    "".join(chr(255 - ord(c)) for c in pod["metadata"]["creationTimestamp"]),
                )

            for pod in sorted(pods, key=victim_rank)[: len(pods) - desired]:
                self._delete(PODS, pod)
                self.event(replicaset, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")

    def _replicaset_status(self, replicaset: dict[str, Any]) -> None:
        pods = [p for p in self._owned(PODS, replicaset) if not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in pods if is_pod_ready(p))
        status: dict[str, Any] = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": replicaset["metadata"].get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v != 0 or k in ("observedGeneration", "replicas")}
        self._set_status(REPLICASETS, replicaset, status)

    def _create_pod(
        self,
        owner: dict[str, Any],
        template: dict[str, Any],
        name: str,
        extra_labels: dict[str, str] | None = None,
        node_name: str | None = None,
    ) -> dict[str, Any] | None:
        metadata = copy.deepcopy(template.get("metadata") or {})
        metadata["labels"] = {**(metadata.get("labels") or {}), **(extra_labels or {})}
        metadata.update(name=name, ownerReferences=[owner_ref(owner)])
        metadata.pop("namespace", None)
        spec = copy.deepcopy(template.get("spec") or {})
        if node_name:
            spec["nodeName"] = node_name
        try:
            namespace = owner["metadata"]["namespace"]
            return self.store.create(PODS, {"metadata": metadata, "spec": spec}, namespace)
        except ApiError as exc:  # refused by admission (a ResourceQuota): the owner says so and retries
            if exc.status != 403:
                raise
            self.event(owner, "FailedCreate", f"Error creating: {exc.message}", "Warning")
            return None

    def _workload_of(self, pod: dict[str, Any]) -> tuple[str, str] | None:
        """The (kind, name) of the workload that ultimately owns the pod, for fault targeting."""
        uid = controller_uid(pod)
        owner = self.store.find_by_uid(uid) if uid else None
        if owner is None:
            return None
        if owner["kind"] == "ReplicaSet":
            parent_uid = controller_uid(owner)
            parent = self.store.find_by_uid(parent_uid) if parent_uid else None
            return ("deployment", parent["metadata"]["name"]) if parent else None
        return (owner["kind"].lower(), owner["metadata"]["name"])

    def scale_of(self, pod: dict[str, Any]) -> tuple[str, int] | None:
        """The pod's top-level controller (uid, desired replicas), e.g. the Deployment above its RS."""
        uid = controller_uid(pod)
        owner = self.store.find_by_uid(uid) if uid else None
        if owner is not None and owner["kind"] == "ReplicaSet":
            parent_uid = controller_uid(owner)
            owner = (self.store.find_by_uid(parent_uid) if parent_uid else None) or owner
        if owner is None or "replicas" not in (owner.get("spec") or {}):
            return None
        return owner["metadata"]["uid"], int(owner["spec"]["replicas"])

    def _capture_faults(self) -> None:
        by_workload: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for pod in self.store.list(PODS):
            workload = self._workload_of(pod)
            if workload and not pod["metadata"].get("deletionTimestamp"):
                by_workload.setdefault((workload[0], pod["metadata"]["namespace"], workload[1]), []).append(
                    pod
                )
        for fault in self.faults.faults:
            pods = by_workload.get((fault.kind, fault.namespace, fault.workload), [])
            if fault.pod_uids is None and pods:
                fault.pod_uids = {p["metadata"]["uid"] for p in pods}

    # --- statefulsets, daemonsets, jobs ---------------------------------------------------------

    def _statefulset(self, statefulset: dict[str, Any]) -> None:
        sets.reconcile_statefulset(self, statefulset)

    def _daemonset(self, daemonset: dict[str, Any]) -> None:
        sets.reconcile_daemonset(self, daemonset)

    def _job(self, job: dict[str, Any]) -> None:
        batch.reconcile_job(self, job)

    # --- scheduler & kubelet --------------------------------------------------------------------

    def _schedule(self) -> None:
        nodes = [n for n in self.store.list(NODES) if not n["spec"].get("unschedulable")]
        pods = self.store.list(PODS)
        load = {n["metadata"]["name"]: 0 for n in nodes}
        for pod in pods:
            if pod["spec"].get("nodeName") in load:
                load[pod["spec"]["nodeName"]] += 1
        for pod in pods:
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            candidates = [n for n in nodes if _fits(pod, n)]
            old_conditions = (pod.get("status") or {}).get("conditions")
            if not candidates:
                message = f"0/{len(self.store.list(NODES))} nodes are available: no schedulable node matches."
                status = {
                    **(pod.get("status") or {}),
                    "phase": "Pending",
                    "conditions": [
                        condition("PodScheduled", False, "Unschedulable", message, old_conditions)
                    ],
                }
                self._set_status(PODS, pod, status)
                continue
            node = min(candidates, key=lambda n: (load[n["metadata"]["name"]], n["metadata"]["name"]))
            load[node["metadata"]["name"]] += 1
            bound = copy.deepcopy(pod)
            bound["spec"]["nodeName"] = node["metadata"]["name"]
            bound["status"] = {"phase": "Pending", "conditions": [condition("PodScheduled", True)]}
            self._write(PODS, bound)
            self.event(
                pod,
                "Scheduled",
                f"Successfully assigned {pod['metadata']['namespace']}/"
                f"{pod['metadata']['name']} to {node['metadata']['name']}",
            )

    def _kubelet(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        if spec.get("nodeName") and meta.get("deletionTimestamp"):
            if self._node_ready(spec["nodeName"]):  # an unreachable kubelet never finishes it
                self._stop(pod)
            return
        if not spec.get("nodeName"):
            return
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            return
        runtime = self._runtime.setdefault(meta["uid"], PodRuntime())
        now = time.monotonic()
        if now - runtime.scheduled_at < self.pod_ready_delay:
            self._set_status(PODS, pod, self._pod_status(pod, runtime, "pending", status))
            return
        namespace, name = meta["namespace"], meta["name"]
        containers = [c["name"] for c in spec.get("containers", [])]
        if runtime.started is None and not self.faults.unpullable(pod):
            runtime.started = now_rfc3339()
            for container in spec.get("containers", []):
                self.logs.write(namespace, name, container["name"], *_startup_lines(container))
            self.event(pod, "Started", f"Started container {containers[0] if containers else ''}")
        effect = self.faults.effect(pod, self._workload_of(pod)) or batch.marked_fault(self.store, pod)
        is_job_pod = spec.get("restartPolicy") in ("Never", "OnFailure") and controller_uid(pod) is not None
        if is_job_pod and effect is None and now - runtime.scheduled_at >= 2 * self.pod_ready_delay:
            for container in containers:
                self.logs.write(namespace, name, container, "Completed successfully")
            self._set_status(PODS, pod, self._pod_status(pod, runtime, "succeeded", status))
            return
        unpullable = self.faults.unpullable(pod)
        if unpullable:  # the kubelet cannot pull an image: no container starts (phase Pending)
            if runtime.image_pull_failed is None:
                runtime.image_pull_failed = now
                image = next(c["image"] for c in spec["containers"] if c["name"] in sorted(unpullable))
                self.event(pod, "Failed", f'Failed to pull image "{image}": not found', "Warning")
            backoff = now - runtime.image_pull_failed >= self.crash_interval
            self._set_status(
                PODS, pod, self._pod_status(pod, runtime, "imagepull", status, unpullable, backoff=backoff)
            )
            return
        failing = self.faults.failing_containers(pod, self._workload_of(pod))
        if not failing and batch.marked_fault(self.store, pod):
            failing = set(containers)
        why: dict[str, str] = {}
        if not failing:  # the application refuses its config, or its liveness probe kills it
            app_effect, failing, why = app_faults.failing(
                pod, self._workload_of(pod), self.faults.bad_configs, self.faults.slow_starts, self._read
            )
            effect = app_effect or effect
        if failing and spec.get("restartPolicy") == "Never":
            self._set_status(PODS, pod, batch.failed_pod_status(pod, runtime, status))  # no restart: Failed
            return
        if (
            failing
            and effect in ("crashloop", "oom", *app_faults.EFFECTS)
            and (not runtime.crashed_once or now - runtime.last_crash >= self.crash_interval)
        ):
            self._crash(pod, runtime, effect, failing, why)
        if effect == "unready" and not runtime.unready_logged:
            runtime.unready_logged = True
            for container in containers:
                self.logs.write(namespace, name, container, "readiness check failed: upstream not reachable")
            self.event(
                pod, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", "Warning"
            )
        state = "crashing" if failing else "unready" if effect == "unready" else "running"
        self._set_status(PODS, pod, self._pod_status(pod, runtime, state, status, failing))

    def _node_ready(self, name: str) -> bool:
        """Whether the node's kubelet reports Ready=True (a node not registered yet: it will)."""
        node = self.store.get(NODES, None, name)
        conditions = ((node or {}).get("status") or {}).get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        return ready is None or ready.get("status") == "True"

    def _stop(self, pod: dict[str, Any]) -> None:
        """A deleted pod's kubelet: runs the preStop sleeps, stops the containers, then deletes
        the pod for good (grace period 0), at the latest when its grace period is over."""
        meta = pod["metadata"]
        began = self._terminating.setdefault(meta["uid"], time.monotonic())
        grace = float(meta.get("deletionGracePeriodSeconds") or 0)
        if time.monotonic() - began < min(grace, self.pod_stop_delay + _pre_stop_sleep(pod)):
            return
        _, gone = self.store.delete(PODS, meta["namespace"], meta["name"], grace_period_seconds=0)
        if gone:
            self._forget_pod(meta)

    def _read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.get(resolve(kind.lower() + "s"), namespace, name)

    def _crash(
        self,
        pod: dict[str, Any],
        runtime: PodRuntime,
        effect: str,
        failing: set[str],
        why: dict[str, str] | None = None,
    ) -> None:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        oom = effect == "oom"
        crash_lines = (
            ["fatal error: runtime: out of memory", "Killed"]
            if oom
            else ["panic: failed to connect to backend: connection refused", "exiting with status 1"]
        )
        finished = now_rfc3339()
        for container in pod["spec"].get("containers", []):
            cname = container["name"]
            if cname not in failing:
                continue
            if effect in app_faults.EFFECTS:
                crash_lines = app_faults.crash_lines(effect, (why or {}).get(cname, ""))
            if effect == "liveness":  # the kubelet kills it (SIGKILL after the grace period: 137)
                self.event(pod, "Unhealthy", app_faults.liveness_message(pod, container), "Warning")
                self.event(pod, "Killing", f"Container {cname} failed liveness probe, will be restarted")
            # The crashed instance's log becomes --previous; the restarted one crashes the same way.
            self.logs.write(namespace, name, cname, *crash_lines)
            self.logs.restart(namespace, name, cname)
            self.logs.write(namespace, name, cname, *_startup_lines(container), *crash_lines)
            runtime.restarts[cname] = runtime.restarts.get(cname, 0) + 1
            runtime.last_terminated[cname] = {
                "terminated": {
                    "exitCode": 137 if oom or effect == "liveness" else 1,
                    "reason": "OOMKilled" if oom else "Error",
                    "startedAt": runtime.container_started.get(cname, runtime.started),
                    "finishedAt": finished,
                }
            }
            runtime.container_started[cname] = finished
        runtime.crashed_once = True
        runtime.last_crash = time.monotonic()
        self.event(pod, "BackOff", "Back-off restarting failed container", "Warning")

    def _pod_status(
        self,
        pod: dict[str, Any],
        runtime: PodRuntime,
        state: str,
        old: dict[str, Any],
        failing: set[str] | None = None,
        *,
        backoff: bool = False,
    ) -> dict[str, Any]:
        """``state`` is the pod's; with "crashing" only the ``failing`` containers crash-loop;
        with "imagepull" the ``failing`` containers wait for their image (``backoff``: in
        ImagePullBackOff, else ErrImagePull) and no container has started."""
        previous = old.get("conditions")
        node = pod["spec"].get("nodeName", "")
        if not old.get("podIP") and state != "pending":
            self._ip_counter += 1
        pod_ip = old.get("podIP") or (
            f"10.244.{self._ip_counter // 250}.{self._ip_counter % 250 + 1}" if state != "pending" else None
        )
        statuses = []
        crashing = {
            c["name"]
            for c in pod["spec"].get("containers", [])
            if state == "crashing" and (failing is None or c["name"] in failing)
        }
        for container in pod["spec"].get("containers", []):
            image = container.get("image", "")
            cname = container["name"]
            # In a crashing pod the containers that do not crash run (and are ready) as usual.
            cstate = "crashing" if cname in crashing else "running" if state == "crashing" else state
            if state == "imagepull":
                cstate = "imagepull" if cname in (failing or set()) else "pending"
            entry: dict[str, Any] = {
                "name": cname,
                "image": image,
                "imageID": f"docker.io/{image}",
                "restartCount": runtime.restarts.get(cname, 0),
                "ready": cstate == "running",
                "started": cstate in ("running", "unready"),
            }
            if cstate == "pending":
                entry["state"] = {"waiting": {"reason": "ContainerCreating"}}
                entry["started"] = False
            elif cstate == "imagepull":
                entry["state"] = {
                    "waiting": {
                        "reason": "ImagePullBackOff" if backoff else "ErrImagePull",
                        "message": f'Back-off pulling image "{image}"'
                        if backoff
                        else f"rpc error: code = NotFound desc = failed to pull and unpack image "
                        f'"{image}": not found',
                    }
                }
                entry["started"] = False
            elif cstate == "crashing":
                entry["state"] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": (
                            f"back-off 10s restarting failed container={container['name']} "
                            f"pod={pod['metadata']['name']}_{pod['metadata']['namespace']}"
                        ),
                    }
                }
            elif cstate == "succeeded":
                entry["state"] = {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": runtime.started,
                        "finishedAt": runtime.started,
                    }
                }
            else:
                started = runtime.container_started.get(cname, runtime.started)
                entry["state"] = {"running": {"startedAt": started}}
            if state != "pending" and cstate not in ("pending", "imagepull"):
                entry["containerID"] = (
                    f"containerd://{hashlib.sha256(pod['metadata']['uid'].encode()).hexdigest()}"
                )
            entry["lastState"] = runtime.last_terminated.get(cname) or {}
            statuses.append(entry)
        ready = state == "running"
        reason = "" if ready or state == "succeeded" else "ContainersNotReady"
        not_ready = [s["name"] for s in statuses if not s["ready"]]
        message = "" if not reason else f"containers with unready status: [{' '.join(not_ready)}]"
        if state == "succeeded":
            reason = "PodCompleted"
        status: dict[str, Any] = {
            "phase": {"pending": "Pending", "imagepull": "Pending", "succeeded": "Succeeded"}.get(
                state, "Running"
            ),
            "conditions": [
                condition("PodReadyToStartContainers", state != "pending", previous=previous),
                condition("Initialized", True, previous=previous),
                condition("Ready", ready, reason, message, previous),
                condition("ContainersReady", ready, reason, message, previous),
                condition("PodScheduled", True, previous=previous),
            ],
            "hostIP": _node_ip(node),
            "hostIPs": [{"ip": _node_ip(node)}],
            "startTime": old.get("startTime") or now_rfc3339(),
            "containerStatuses": statuses,
            "qosClass": _qos_class(pod),
        }
        if pod_ip:
            status.update(podIP=pod_ip, podIPs=[{"ip": pod_ip}])
        return status

    # --- budgets & endpoints --------------------------------------------------------------------

    def _disruption_budgets(self) -> None:
        pods = self.store.list(PODS)
        for pdb in self.store.list(PDBS):
            budget = compute_budget(pdb, pods, self.scale_of)
            old = (pdb.get("status") or {}).get("conditions")
            allowed = budget.disruptions_allowed > 0
            # policy/v1 uses metav1.Condition: reason and message are required (possibly empty).
            pdb_condition = condition(
                "DisruptionAllowed", allowed, "SufficientPods" if allowed else "InsufficientPods", "", old
            )
            pdb_condition.pop("lastProbeTime", None)
            pdb_condition.update(message="", observedGeneration=pdb["metadata"].get("generation", 1))
            self._set_status(
                PDBS,
                pdb,
                {
                    "observedGeneration": pdb["metadata"].get("generation", 1),
                    "expectedPods": budget.expected,
                    "currentHealthy": budget.current_healthy,
                    "desiredHealthy": budget.desired_healthy,
                    "disruptionsAllowed": budget.disruptions_allowed,
                    "conditions": [pdb_condition],
                },
            )

    def _endpoints(self) -> None:
        for service in self.store.list(SERVICES):
            selector = service["spec"].get("selector")
            if not selector:
                continue
            namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
            requirements = label_selector_from_object({"matchLabels": selector})
            pods = [
                p
                for p in self.store.list(PODS, namespace)
                if labels_match(requirements, p["metadata"].get("labels"))
                and (p.get("status") or {}).get("podIP")
                and not p["metadata"].get("deletionTimestamp")  # terminating: no longer served
            ]

            def address(pod: dict[str, Any], namespace: str = namespace) -> dict[str, Any]:
                return {
                    "ip": pod["status"]["podIP"],
                    "nodeName": pod["spec"].get("nodeName"),
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": namespace,
                        "name": pod["metadata"]["name"],
                        "uid": pod["metadata"]["uid"],
                    },
                }

            ready = [address(p) for p in pods if is_pod_ready(p)]
            not_ready = [address(p) for p in pods if not is_pod_ready(p)]
            ports = [
                {
                    "name": p.get("name"),
                    "port": p.get("targetPort", p.get("port")),
                    "protocol": p.get("protocol", "TCP"),
                }
                for p in service["spec"].get("ports") or []
            ]
            subset: dict[str, Any] = {"ports": [{k: v for k, v in p.items() if v is not None} for p in ports]}
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            body = {
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": service["metadata"].get("labels", {}),
                },
                "subsets": [subset] if pods else [],
            }
            existing = self.store.get(ENDPOINTS, namespace, name)
            if existing is None:
                self.store.create(ENDPOINTS, body, namespace)
            elif existing.get("subsets") != body["subsets"]:
                updated = copy.deepcopy(existing)
                updated["subsets"] = body["subsets"]
                self._write(ENDPOINTS, updated)


def _pre_stop_sleep(pod: dict[str, Any]) -> float:
    """The longest `lifecycle.preStop.sleep.seconds` of the pod's containers (the kubelet runs
    the hooks side by side before stopping the containers)."""
    return max(
        (
            float(((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0))
            for c in pod["spec"].get("containers", [])
        ),
        default=0.0,
    )


def _fits(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    """nodeSelector and NoSchedule/NoExecute taints vs. tolerations, as the scheduler checks them."""
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod["spec"].get("nodeSelector") or {}).items()):
        return False
    tolerations = pod["spec"].get("tolerations") or []
    for taint in node["spec"].get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            return False
    return True


def _tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return bool(
        toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get("value", "")
    )


def _node_ip(node_name: str) -> str:
    return f"10.0.0.{int(hashlib.sha256(node_name.encode()).hexdigest(), 16) % 250 + 2}"


def _qos_class(pod: dict[str, Any]) -> str:
    resources = [c.get("resources") or {} for c in pod["spec"].get("containers", [])]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    if all(r.get("limits") and r.get("limits") == (r.get("requests") or r.get("limits")) for r in resources):
        return "Guaranteed"
    return "Burstable"


def _startup_lines(container: dict[str, Any]) -> list[str]:
    image = container.get("image", "unknown")
    ports = [str(p.get("containerPort")) for p in container.get("ports") or []]
    return [
        f"Starting {container['name']} ({image})",
        f"Listening on port {', '.join(ports) or '8080'}",
        "Ready to accept connections",
    ]
