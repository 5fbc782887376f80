"""Cluster API waits: a MachineDeployment at its replicas with every Machine's node Ready
(``machines_ready``); a deleted Machine gone and its MachineSet whole again (``machine_replaced``)."""

from __future__ import annotations

from typing import Any

from kubernaut.waits.clients import WaitClients
from kubernaut.waits.kube import read_custom
from kubernaut.waits.spec import Done, Pending, PollResult

GROUP, VERSION = "cluster.x-k8s.io", "v1beta1"


async def poll_machines_ready(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> PollResult:
    """args: ``namespace``, ``name`` (MachineDeployment), ``replicas``: done when its status has
    observed the current generation and counts exactly ``replicas`` machines, all ready."""
    namespace, name, replicas = args["namespace"], args["name"], int(args["replicas"])
    md = await read_custom(
        clients,
        GROUP,
        VERSION,
        namespace,
        "machinedeployments",
        name,
        f"machinedeployment {namespace}/{name}",
    )
    if md is None:
        return Pending({"exists": False})
    status = md.get("status") or {}
    detail = {k: status.get(k) for k in ("replicas", "readyReplicas", "phase", "observedGeneration")}
    settled = int(status.get("observedGeneration") or 0) >= int(md["metadata"].get("generation") or 1)
    same = int(status.get("replicas") or 0) == replicas == int(status.get("readyReplicas") or 0)
    return Done(detail) if settled and same else Pending(detail)


async def poll_machine_replaced(
    clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]
) -> PollResult:
    """args: ``namespace``, ``machine``, ``uid``, ``machineset``: done when that Machine (by uid)
    is gone and the MachineSet has ``spec.replicas`` machines, all ready."""
    namespace = args["namespace"]
    machine = await read_custom(
        clients,
        GROUP,
        VERSION,
        namespace,
        "machines",
        args["machine"],
        f"machine {namespace}/{args['machine']}",
    )
    old_gone = machine is None or machine["metadata"].get("uid") != args["uid"]
    ms = await read_custom(
        clients,
        GROUP,
        VERSION,
        namespace,
        "machinesets",
        args["machineset"],
        f"machineset {namespace}/{args['machineset']}",
    )
    status = (ms or {}).get("status") or {}
    wanted = int(((ms or {}).get("spec") or {}).get("replicas", 1))
    detail = {
        "old_machine_gone": old_gone,
        "replicas": status.get("replicas"),
        "readyReplicas": status.get("readyReplicas"),
        "wanted": wanted,
    }
    whole = ms is not None and int(status.get("readyReplicas") or 0) >= wanted == int(
        status.get("replicas") or 0
    )
    return Done(detail) if old_gone and whole else Pending(detail)
