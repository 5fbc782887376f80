"""A small Cluster API (``cluster.x-k8s.io/v1beta1``) for the sandbox: MachineDeployment ->
MachineSet -> Machine -> Node, as the core CAPI controllers with an infrastructure provider
that boots a machine at once.

* A MachineDeployment keeps one MachineSet (its own, or an orphan its selector matches, which
  it adopts) at ``spec.replicas``; no rolling update of the machine template.
* A MachineSet keeps ``spec.replicas`` Machines (adopting orphans its selector matches);
  scaling down deletes Machines annotated ``cluster.x-k8s.io/delete-machine`` first, then
  those whose node is not Ready, then the newest.
* A Machine gets the finalizer ``machine.cluster.x-k8s.io``; its "infrastructure" comes up as a
  Node named like the Machine, annotated ``cluster.x-k8s.io/machine`` (and cluster-name,
  cluster-namespace, owner-kind, owner-name) with ``spec.providerID``; ``status.nodeRef`` names
  it and ``status.phase`` goes Provisioning -> Running. A deleted Machine (phase Deleting)
  deletes its Node (the pod GC removes the pods bound to it), then drops its finalizer, so
  its MachineSet creates a replacement: what the Cluster API documents for replacing a node.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from kubernaut.sandbox.resources import resolve
from kubernaut.sandbox.selectors import label_selector_from_object, labels_match
from kubernaut.sandbox.store import now_rfc3339, random_suffix

if TYPE_CHECKING:
    from kubernaut.sandbox.controller import Controller

NODES = resolve("nodes")
MACHINEDEPLOYMENTS = resolve("machinedeployments.cluster.x-k8s.io")
MACHINESETS = resolve("machinesets.cluster.x-k8s.io")
MACHINES = resolve("machines.cluster.x-k8s.io")

MACHINE_FINALIZER = "machine.cluster.x-k8s.io"
MACHINE_ANNOTATION = "cluster.x-k8s.io/machine"
DELETE_MACHINE = "cluster.x-k8s.io/delete-machine"
CLUSTER_LABEL = "cluster.x-k8s.io/cluster-name"
DEPLOYMENT_LABEL = "cluster.x-k8s.io/deployment-name"
SET_LABEL = "cluster.x-k8s.io/set-name"


def reconcile(ctl: Controller) -> None:
    store = ctl.store
    for deployment in store.list(MACHINEDEPLOYMENTS):
        _deployment(ctl, deployment)
    for machineset in store.list(MACHINESETS):
        _machineset(ctl, machineset)
    for machine in store.list(MACHINES):
        _machine(ctl, machine)
    for machineset in store.list(MACHINESETS):
        _set_status(ctl, MACHINESETS, machineset, _children(ctl, MACHINES, machineset))
    for deployment in store.list(MACHINEDEPLOYMENTS):
        machines = [m for s in _children(ctl, MACHINESETS, deployment) for m in _children(ctl, MACHINES, s)]
        _set_status(ctl, MACHINEDEPLOYMENTS, deployment, machines)


def _selected(owner: dict[str, Any], obj: dict[str, Any]) -> bool:
    requirements = label_selector_from_object(owner["spec"].get("selector") or {})
    return bool(requirements) and labels_match(requirements, obj["metadata"].get("labels") or {})


def _children(ctl: Controller, spec: Any, owner: dict[str, Any]) -> list[dict[str, Any]]:
    """Objects ``owner`` controls; an orphan its selector matches is adopted (controller ref)."""
    from kubernaut.sandbox.controller import controller_uid, owner_ref

    uid, found = owner["metadata"]["uid"], []
    for obj in ctl.store.list(spec, owner["metadata"]["namespace"]):
        owned = controller_uid(obj)
        if owned is None and _selected(owner, obj) and not obj["metadata"].get("deletionTimestamp"):
            adopted = copy.deepcopy(obj)
            adopted["metadata"].setdefault("ownerReferences", []).append(owner_ref(owner))
            obj, owned = ctl._write(spec, adopted), uid
        if owned == uid:
            found.append(obj)
    return found


def _template(owner: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(owner["spec"].get("template") or {})


def _deployment(ctl: Controller, deployment: dict[str, Any]) -> None:
    from kubernaut.sandbox.controller import owner_ref, template_hash

    if deployment["metadata"].get("deletionTimestamp"):
        return
    spec, name = deployment["spec"], deployment["metadata"]["name"]
    replicas = int(spec.get("replicas", 1))
    sets = [s for s in _children(ctl, MACHINESETS, deployment) if not s["metadata"].get("deletionTimestamp")]
    if not sets:
        template = _template(deployment)
        labels = {**(template.get("metadata") or {}).get("labels", {}), DEPLOYMENT_LABEL: name}
        template.setdefault("metadata", {})["labels"] = labels
        ctl.store.create(
            MACHINESETS,
            {
                "metadata": {
                    "name": f"{name}-{template_hash(template)[:5]}",
                    "namespace": deployment["metadata"]["namespace"],
                    "labels": labels,
                    "ownerReferences": [owner_ref(deployment)],
                },
                "spec": {
                    "clusterName": spec.get("clusterName"),
                    "replicas": replicas,
                    "selector": {"matchLabels": labels},
                    "template": template,
                },
            },
        )
        return
    for machineset in sets:
        if int(machineset["spec"].get("replicas", 1)) != replicas:
            scaled = copy.deepcopy(machineset)
            scaled["spec"]["replicas"] = replicas
            ctl._write(MACHINESETS, scaled)


def _victim_rank(ctl: Controller, machine: dict[str, Any]) -> tuple[int, int, str]:
    annotated = DELETE_MACHINE in (machine["metadata"].get("annotations") or {})
    node = str(((machine.get("status") or {}).get("nodeRef") or {}).get("name") or "")
    healthy = bool(node) and _node_up(ctl, node)
    return (0 if annotated else 1, 1 if healthy else 0, _neg(machine["metadata"]["creationTimestamp"]))


def _node_up(ctl: Controller, name: str) -> bool:
    return ctl.store.get(NODES, None, name) is not None and ctl._node_ready(name)


def _neg(stamp: str) -> str:
    return "".join(chr(255 - ord(c)) for c in stamp)  # newest first


def _machineset(ctl: Controller, machineset: dict[str, Any]) -> None:
    from kubernaut.sandbox.controller import owner_ref

    if machineset["metadata"].get("deletionTimestamp"):
        return
    meta, spec = machineset["metadata"], machineset["spec"]
    replicas = int(spec.get("replicas", 1))
    live = [m for m in _children(ctl, MACHINES, machineset) if not m["metadata"].get("deletionTimestamp")]
    template = _template(machineset)
    for _ in range(replicas - len(live)):
        labels = {**(template.get("metadata") or {}).get("labels", {}), SET_LABEL: meta["name"]}
        deployment = (meta.get("labels") or {}).get(DEPLOYMENT_LABEL)
        if deployment:
            labels[DEPLOYMENT_LABEL] = deployment
        if spec.get("clusterName"):
            labels[CLUSTER_LABEL] = spec["clusterName"]
        machine_spec = {**(template.get("spec") or {}), "clusterName": spec.get("clusterName")}
        machine = ctl.store.create(
            MACHINES,
            {
                "metadata": {
                    "name": f"{meta['name']}-{random_suffix()}",
                    "namespace": meta["namespace"],
                    "labels": labels,
                    "ownerReferences": [owner_ref(machineset)],
                },
                "spec": machine_spec,
            },
        )
        ctl.event(machineset, "SuccessfulCreate", f"Created machine {machine['metadata']['name']}")
    if len(live) > replicas:
        for machine in sorted(live, key=lambda m: _victim_rank(ctl, m))[: len(live) - replicas]:
            ctl._delete(MACHINES, machine)
            ctl.event(machineset, "SuccessfulDelete", f"Deleted machine {machine['metadata']['name']}")


def _machine(ctl: Controller, machine: dict[str, Any]) -> None:
    meta = machine["metadata"]
    status = copy.deepcopy(machine.get("status") or {})
    node_name = (status.get("nodeRef") or {}).get("name")
    if meta.get("deletionTimestamp"):
        if status.get("phase") != "Deleting":
            ctl._set_status(MACHINES, machine, {**status, "phase": "Deleting"})
            return
        if node_name and ctl.store.get(NODES, None, node_name) is not None:
            ctl.store.delete(NODES, None, node_name)  # the provider deleted the instance
            return
        done = copy.deepcopy(ctl.store.require(MACHINES, meta["namespace"], meta["name"]))
        done["metadata"]["finalizers"] = [f for f in meta.get("finalizers") or [] if f != MACHINE_FINALIZER]
        ctl._write(MACHINES, done)
        return
    if MACHINE_FINALIZER not in (meta.get("finalizers") or []):
        held = copy.deepcopy(machine)
        held["metadata"].setdefault("finalizers", []).append(MACHINE_FINALIZER)
        ctl._write(MACHINES, held)
        return
    if not status.get("phase"):
        ctl._set_status(MACHINES, machine, {"phase": "Provisioning", "bootstrapReady": True})
        return
    provider_id = f"sandbox://{meta['namespace']}/{meta['name']}"
    if not node_name:
        node = ctl.store.get(NODES, None, meta["name"]) or ctl.store.create(
            NODES,
            {
                "metadata": {
                    "name": meta["name"],
                    "labels": {"kubernetes.io/hostname": meta["name"], "kubernetes.io/os": "linux"},
                    "annotations": node_annotations(machine),
                },
                "spec": {"providerID": provider_id},
            },
        )
        status["nodeRef"] = {
            "apiVersion": "v1",
            "kind": "Node",
            "name": node["metadata"]["name"],
            "uid": node["metadata"]["uid"],
        }
        status.update(infrastructureReady=True, bootstrapReady=True, phase="Running")
        status["lastUpdated"] = now_rfc3339()
    _annotate_node(ctl, machine, str((status.get("nodeRef") or {}).get("name") or ""))
    ready = bool(status.get("nodeRef")) and _node_up(ctl, status["nodeRef"]["name"])
    status["conditions"] = [_condition("Ready", ready), _condition("NodeHealthy", ready)]
    if status != (machine.get("status") or {}) or machine["spec"].get("providerID") != provider_id:
        if machine["spec"].get("providerID") != provider_id:
            with_id = copy.deepcopy(machine)
            with_id["spec"]["providerID"] = provider_id
            machine = ctl._write(MACHINES, with_id)
        ctl._set_status(MACHINES, machine, _keep_times(machine.get("status") or {}, status))


def node_annotations(machine: dict[str, Any]) -> dict[str, str]:
    """What the Machine controller keeps on its Node (``reconcileNode``)."""
    meta = machine["metadata"]
    return {
        MACHINE_ANNOTATION: meta["name"],
        "cluster.x-k8s.io/cluster-name": str(machine["spec"].get("clusterName") or ""),
        "cluster.x-k8s.io/cluster-namespace": meta["namespace"],
        "cluster.x-k8s.io/owner-kind": "MachineSet",
        "cluster.x-k8s.io/owner-name": next(
            (str(r.get("name")) for r in meta.get("ownerReferences") or [] if r.get("controller")), ""
        ),
    }


def _annotate_node(ctl: Controller, machine: dict[str, Any], node_name: str) -> None:
    node = ctl.store.get(NODES, None, node_name) if node_name else None
    if node is None:
        return
    wanted = node_annotations(machine)
    current = node["metadata"].get("annotations") or {}
    if any(current.get(k) != v for k, v in wanted.items()):
        annotated = copy.deepcopy(node)
        annotated["metadata"]["annotations"] = {**current, **wanted}
        ctl._write(NODES, annotated)


def _condition(type_: str, ok: bool) -> dict[str, Any]:
    return {"type": type_, "status": "True" if ok else "False", "lastTransitionTime": ""}


def _keep_times(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Conditions keep their transition time while their status does not change."""
    before = {c["type"]: c for c in old.get("conditions") or []}
    for cond in new.get("conditions") or []:
        prev = before.get(cond["type"])
        same = prev is not None and prev.get("status") == cond["status"]
        cond["lastTransitionTime"] = prev["lastTransitionTime"] if same and prev else now_rfc3339()
    if old.get("lastUpdated") and {k: v for k, v in new.items() if k != "lastUpdated"} == {
        k: v for k, v in old.items() if k != "lastUpdated"
    }:
        new["lastUpdated"] = old["lastUpdated"]
    return new


def _set_status(ctl: Controller, spec: Any, owner: dict[str, Any], machines: list[dict[str, Any]]) -> None:
    live = [m for m in machines if not m["metadata"].get("deletionTimestamp")]
    ready = [
        m
        for m in live
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (m.get("status") or {}).get("conditions") or []
        )
    ]
    desired = int(owner["spec"].get("replicas", 1))
    status: dict[str, Any] = {
        "observedGeneration": owner["metadata"].get("generation", 1),
        "replicas": len(machines),
        "readyReplicas": len(ready),
        "availableReplicas": len(ready),
        "fullyLabeledReplicas": len(machines),
        "selector": ",".join(
            f"{k}={v}"
            for k, v in sorted(((owner["spec"].get("selector") or {}).get("matchLabels") or {}).items())
        ),
    }
    if spec is MACHINEDEPLOYMENTS:
        status["updatedReplicas"] = len(live)
        status["unavailableReplicas"] = max(0, desired - len(ready))
        status["phase"] = (
            "Running"
            if len(ready) == desired == len(machines)
            else "ScalingUp"
            if len(live) < desired or len(ready) < desired
            else "ScalingDown"
        )
    ctl._set_status(spec, owner, status)


__all__ = ["MACHINE_ANNOTATION", "MACHINE_FINALIZER", "reconcile"]
