"""Pods: the alerting pod (or its replacement) healthy for a while (``pod_health``); a deleted
pod gone or replaced under its name (``pod_replaced``)."""

from __future__ import annotations

import datetime
import time
from typing import Any

from kubernaut.kube.pods import (
    Owner,
    container_summaries,
    controller_of,
    is_ready,
    pod_summary,
    selector_string,
)
from kubernaut.waits.clients import WaitClients
from kubernaut.waits.kube import find, list_pods, read, read_pod_seen
from kubernaut.waits.spec import Done, Pending, PollResult


class Steadiness:
    """Tracks, per pod uid, since when it has been Ready with an unchanged restart count."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.since: dict[str, tuple[float, int]] = {}

    def observe(self, pods: list[Any]) -> tuple[bool, dict[str, float | None]]:
        now = time.monotonic()
        steady: dict[str, float | None] = {}
        for pod in pods:
            uid, restarts = pod.metadata.uid, sum(c["restartCount"] for c in container_summaries(pod))
            if not is_ready(pod):
                self.since.pop(uid, None)
                steady[pod.metadata.name] = None
                continue
            first, seen = self.since.get(uid, (now, restarts))
            if seen != restarts:  # restarted since the last look: the window starts again
                first = now
            self.since[uid] = (first, restarts)
            steady[pod.metadata.name] = round(now - first, 1)
        ok = bool(pods) and all(v is not None and v >= self.window for v in steady.values())
        return ok, steady


async def owner_pods(clients: WaitClients, namespace: str, owner: Owner) -> list[Any]:
    """Pods currently managed by ``owner``, following a ReplicaSet up to its Deployment so that
    pods from a newer ReplicaSet (after a rollout) count as replacements too."""
    selector: dict[str, str] | None = None
    if owner.kind == "ReplicaSet":
        rs = await find(clients, "ReplicaSet", namespace, owner.name)
        parent = controller_of(rs.metadata) if rs is not None else None
        if parent is not None and parent.kind == "Deployment":
            owner = Owner("Deployment", parent.name, "")
        elif rs is not None:
            selector = rs.spec.selector.match_labels
    if owner.kind in ("Deployment", "StatefulSet", "DaemonSet"):
        selector = (await read(clients, owner.kind, namespace, owner.name)).spec.selector.match_labels
    if not selector:
        return []
    what = f"pods of {owner.kind.lower()} {namespace}/{owner.name}"
    pods = await list_pods(clients, namespace, label_selector=selector_string(selector), what=what)
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


async def poll_health(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> PollResult:
    """args: ``namespace``, ``pod``, ``alerting_uid``, ``since`` (RFC 3339 or None), ``owner``
    (kind/name/uid or None), ``stable_for`` (s). The judgment is ValidatePodHealth's (see there):
    the alerting pod itself while it lives, else its owner's pods created since ``since``."""
    namespace, name, alerting_uid = args["namespace"], args["pod"], args.get("alerting_uid")
    if "steadiness" not in memo:
        memo["steadiness"] = Steadiness(float(args["stable_for"]))
        memo["owner"] = Owner(**args["owner"]) if args.get("owner") else None
        since = args.get("since")
        memo["since"] = datetime.datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
    steadiness: Steadiness = memo["steadiness"]
    pod, seen_at = await read_pod_seen(clients, namespace, name)
    alive = pod is not None and pod.metadata.deletion_timestamp is None
    if pod is not None and alive and (alerting_uid is None or pod.metadata.uid == alerting_uid):
        since = memo["since"]
        memo["since"] = seen_at if since is None else max(since, seen_at)  # replacements come later
        ok, steady = steadiness.observe([pod])
        detail = {"pod": pod_summary(pod), "replacement": False, "steadyFor": steady}
        return Done({**detail, "since": _iso(memo["since"])}) if ok else Pending(detail)
    if memo["owner"] is None and pod is not None:
        memo["owner"] = controller_of(pod.metadata)
    owner, since = memo["owner"], memo["since"]
    gone = {"name": name, "exists": pod is not None, "uid": alerting_uid}
    if owner is None:
        return Pending({"pod": gone, "reason": "the pod is gone and had no controller to replace it"})
    candidates = sorted(
        (
            p
            for p in await owner_pods(clients, namespace, owner)
            if p.metadata.uid != alerting_uid and (since is None or p.metadata.creation_timestamp >= since)
        ),
        key=lambda p: (p.metadata.creation_timestamp, p.metadata.name),
    )
    if not candidates:
        return Pending({"pod": gone, "reason": f"no replacement from {owner.kind} {owner.name} yet"})
    ok, steady = steadiness.observe(candidates)
    detail = {
        "pod": pod_summary(candidates[0]),
        "replacement": True,
        "replacements": [p.metadata.name for p in candidates],
        "steadyFor": steady,
    }
    return Done({**detail, "since": _iso(since)}) if ok else Pending(detail)


async def poll_replaced(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> PollResult:
    """args: ``namespace``, ``pod``, ``uid``: done once no pod of that name has that uid (deleted,
    or replaced under the same name as a StatefulSet does)."""
    pod = await find(clients, "Pod", args["namespace"], args["pod"])
    if pod is None or pod.metadata.uid != args["uid"]:
        return Done({"deleted": args["uid"]})
    return Pending("old pod still present")
