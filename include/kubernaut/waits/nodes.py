"""A drained node: the evictions a PodDisruptionBudget refused (429) retried, then every
drained pod deleted from the API (``drain``), as `kubectl drain` waits.

Retrying an eviction is the one write a wait makes. It is safe to repeat (a triggerer restart
runs the wait again): each eviction carries the pod's uid as a precondition, so it only ever
removes the pod the step journaled, and an eviction of a pod already gone answers 404/409."""

from __future__ import annotations

import datetime
from typing import Any

from kubernaut.waits.clients import RetryableWaitError, WaitClients
from kubernaut.waits.kube import api_errors, list_pods, read
from kubernaut.waits.spec import Done, Pending, PollResult


async def evict(clients: WaitClients, namespace: str, name: str, uid: str, grace: int | None) -> bool:
    """One eviction with the uid precondition; False while a disruption budget refuses it (429)."""
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    body = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        delete_options=client.V1DeleteOptions(
            grace_period_seconds=grace, preconditions=client.V1Preconditions(uid=uid)
        ),
    )
    core = client.CoreV1Api(await clients.kube())
    with api_errors(f"eviction of pod {namespace}/{name}"):
        try:
            await core.create_namespaced_pod_eviction(name, namespace, body)
        except ApiException as exc:
            if exc.status == 429:
                return False
            if exc.status in (404, 409):  # gone already, or a successor with another uid
                return True
            raise
    return True


async def poll_drain(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> PollResult:
    """args: ``node``, ``uids`` (every pod the drain takes away), ``blocked`` (evictions refused
    so far: namespace, name, uid), ``grace``, ``skip_wait_for_delete_timeout`` (on a node that
    is not Ready, a pod whose deletionTimestamp is more than this many seconds ago counts as
    gone, as kubectl drain's flag: its kubelet cannot finish it; 0 or absent: always wait)."""
    node = args["node"]
    if "blocked" not in memo:
        memo["blocked"], memo["evicted"] = list(args.get("blocked") or []), []
    node_obj = await read(clients, "Node", None, node)
    if not node_obj.spec.unschedulable:
        return Pending({"node": node, "reason": "not unschedulable"})
    skip_after = int(args.get("skip_wait_for_delete_timeout") or 0)
    ready = any(
        c.type == "Ready" and c.status == "True"
        for c in (node_obj.status.conditions if node_obj.status else None) or []
    )
    now = datetime.datetime.now(datetime.UTC)

    def gone(pod: Any) -> bool:
        stamp = pod.metadata.deletion_timestamp
        return (
            not ready and skip_after > 0 and stamp is not None and (now - stamp).total_seconds() > skip_after
        )

    still = []
    for pod in memo["blocked"]:
        try:
            done = await evict(clients, pod["namespace"], pod["name"], pod["uid"], args.get("grace"))
        except RetryableWaitError:
            done = False
        if done:
            memo["evicted"].append(f"{pod['namespace']}/{pod['name']}")
        else:
            still.append(pod)
    memo["blocked"] = still
    uids = set(args["uids"])
    on_node = await list_pods(
        clients, None, field_selector=f"spec.nodeName={node}", what=f"pods on node {node}"
    )
    mine = [p for p in on_node if p.metadata.uid in uids]
    left = sorted(f"{p.metadata.namespace}/{p.metadata.name}" for p in mine if not gone(p))
    skipped = sorted(f"{p.metadata.namespace}/{p.metadata.name}" for p in mine if gone(p))
    blocked = sorted(f"{p['namespace']}/{p['name']}" for p in still)
    detail = {"evicted_while_waiting": sorted(memo["evicted"]), "blocked_by_pdb": blocked, "left": left}
    if skipped:  # Terminating on a node that is not Ready: counted as gone (kubectl's flag)
        detail["terminating_on_unready_node"] = skipped
    return Done(detail) if not left and not still else Pending(detail)
