"""Workload rollouts: complete (``rollout``), then, for the OOM template, no OOM kill in the
rolled-out pods for a while (``no_oom``)."""

from __future__ import annotations

import time
from typing import Any

from kubernaut.kube.rollout import judge_deployment, judge_workload, selector_of
from kubernaut.waits.clients import WaitClients
from kubernaut.waits.kube import list_pods, read, read_dict
from kubernaut.waits.spec import Done, Failed, Pending, PollResult

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def target(kind: str, namespace: str, name: str, replicas: int | None = None) -> dict[str, Any]:
    """One workload a ``rollout`` wait watches; ``replicas``: also wait until it wants that many."""
    if kind not in WORKLOAD_KINDS:
        raise ValueError(f"rollout wait: kind must be one of {', '.join(WORKLOAD_KINDS)}, got {kind!r}")
    return {"kind": kind, "namespace": namespace, "name": name, "replicas": replicas}


async def workload_status(
    clients: WaitClients, kind: str, namespace: str, name: str
) -> tuple[dict[str, Any], list[Any]]:
    """The rollout status (as ``kube.rollout`` judges it) and the workload's pods."""
    what = f"pods of {kind.lower()} {namespace}/{name}"
    if kind == "Deployment":
        dep = await read(clients, kind, namespace, name)
        pods = await list_pods(clients, namespace, label_selector=selector_of(dep), what=what)
        return judge_deployment(dep, pods), pods
    obj = await read_dict(clients, kind, namespace, name)
    pods = await list_pods(clients, namespace, label_selector=selector_of(obj), what=what)
    return judge_workload(kind, obj, pods), pods


async def poll(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> PollResult:
    """args: ``targets`` (from ``target``): done when every one has rolled out."""
    statuses: dict[str, dict[str, Any]] = {}
    complete = True
    for item in args["targets"]:
        status, _ = await workload_status(clients, item["kind"], item["namespace"], item["name"])
        wanted = item.get("replicas")
        ok = bool(status["complete"]) and (wanted is None or status["desired"] == wanted)
        complete = complete and ok
        statuses[f"{item['kind']}/{item['namespace']}/{item['name']}"] = status
    # One workload (nearly always): its status as it is; several: each by kind/namespace/name.
    detail: Any = next(iter(statuses.values())) if len(statuses) == 1 else statuses
    return Done(detail) if complete else Pending(detail)


def oom_kills(pods: list[Any]) -> list[dict[str, Any]]:
    """Containers whose current or last instance the kernel killed for exceeding its memory limit."""
    from kubernaut.kube.pods import container_summaries

    found = []
    for pod in pods:
        limits = {c.name: ((c.resources.limits or {}) if c.resources else {}) for c in pod.spec.containers}
        for container in container_summaries(pod):
            if container["oomKilled"]:
                found.append(
                    {
                        "pod": pod.metadata.name,
                        "container": container["name"],
                        "restartCount": container["restartCount"],
                        "memoryLimit": limits.get(container["name"], {}).get("memory"),
                    }
                )
    return found


async def poll_no_oom(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> PollResult:
    """args: ``kind``, ``namespace``, ``name``, ``rollout_within`` (s) and ``rollout_deadline``
    (epoch), ``observe`` (s), ``deadline`` (epoch: the wait's).

    First the rollout must complete before ``rollout_deadline``; then its pods are watched for
    ``observe`` seconds and the wait fails at the first OOM kill seen. The watch starts when this
    wait sees the rollout complete (again, after a triggerer restart: a longer watch, never a
    shorter one)."""
    from kubernaut.kube.pods import container_summaries

    kind, namespace, name = args["kind"], args["namespace"], args["name"]
    what = f"{kind.lower()} {namespace}/{name}"
    status, pods = await workload_status(clients, kind, namespace, name)
    if "watching" not in memo:
        if not status["complete"]:
            if time.time() >= args["rollout_deadline"]:
                within = args["rollout_within"]
                return Failed(
                    f"rollout of {what} not reached within {within:.0f}s; last seen: {status}", status
                )
            return Pending({"rollout": status})
        left = args["deadline"] - time.time()
        if args["observe"] > left:
            observe = args["observe"]
            return Failed(
                f"{what}: {max(0.0, left):.0f}s left of the step, too little to watch for {observe:g}s",
                {"rollout": status},
            )
        memo["watching"], memo["rollout"] = time.time(), status
    live = [p for p in pods if p.metadata.deletion_timestamp is None]
    killed = oom_kills(live)
    if killed:
        listed = "; ".join(
            f"container {k['container']} of pod {k['pod']} (memory limit {k['memoryLimit']}, "
            f"{k['restartCount']} restarts)"
            for k in killed
        )
        return Failed(f"{what}: OOMKilled again after the rollout: {listed}", {"oomKilled": killed})
    restarts = {p.metadata.name: sum(c["restartCount"] for c in container_summaries(p)) for p in live}
    watched = time.time() - memo["watching"]
    detail = {"observedFor": round(watched, 1), "restarts": restarts, "rollout": memo["rollout"]}
    return Done(detail) if watched >= args["observe"] else Pending(detail)
