"""Read-only diagnostics of an object: its events, a describe-like status, its pods' last log
lines. Every part is bounded, since the result lands in a step output people read."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubernaut.kube.clients import ApiSource, core
from kubernaut.kube.errors import api_errors
from kubernaut.kube.pods import is_ready, pod_summary, read_log, selector_string

MAX_TEXT = 500  # characters of one event message, condition message or log line
LOG_BUDGET = 64_000  # characters of log text in one result
_EPOCH = datetime.datetime.min.replace(tzinfo=datetime.UTC)


def clip(text: Any, limit: int = MAX_TEXT) -> str:
    value = "" if text is None else str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def object_events(
    ctx: ApiSource, kind: str, namespace: str | None, name: str, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """The newest ``limit`` events about the object, and how many there are in all."""
    selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    with api_errors(f"events of {kind.lower()} {name}"):
        if namespace is None:  # e.g. Node events are recorded in "default": look everywhere
            items = core(ctx).list_event_for_all_namespaces(field_selector=selector).items
        else:
            items = core(ctx).list_namespaced_event(namespace, field_selector=selector).items

    def when(ev: client.CoreV1Event) -> datetime.datetime:
        stamp = ev.last_timestamp or ev.event_time or ev.first_timestamp or ev.metadata.creation_timestamp
        return stamp if isinstance(stamp, datetime.datetime) else _EPOCH

    newest = sorted(items, key=when, reverse=True)[:limit]
    events = [
        {
            "type": ev.type,
            "reason": ev.reason,
            "message": clip(ev.message),
            "count": ev.count or 1,
            "last": when(ev).isoformat() if when(ev) != _EPOCH else None,
            "source": (ev.source.component if ev.source else None) or ev.reporting_component,
        }
        for ev in newest
    ]
    return events, len(items)


def conditions(obj: dict[str, Any], *, only_problems: bool = False) -> list[dict[str, Any]]:
    result = []
    for c in (obj.get("status") or {}).get("conditions") or []:
        if only_problems and c.get("status") == "True":
            continue
        entry = {"type": c.get("type"), "status": c.get("status"), "reason": c.get("reason")}
        if c.get("message"):
            entry["message"] = clip(c["message"])
        result.append(entry)
    return result


def node_status(obj: dict[str, Any]) -> dict[str, Any]:
    status = obj.get("status") or {}
    return {
        "unschedulable": bool(obj["spec"].get("unschedulable")),
        "taints": obj["spec"].get("taints") or [],
        "conditions": conditions(obj),
        "capacity": status.get("capacity") or {},
        "allocatable": status.get("allocatable") or {},
        "kubeletVersion": (status.get("nodeInfo") or {}).get("kubeletVersion"),
    }


def generic_status(obj: dict[str, Any]) -> dict[str, Any]:
    """Scalar status fields and the conditions: enough to see what is wrong, never unbounded."""
    status = obj.get("status") or {}
    result: dict[str, Any] = {
        k: clip(v) if isinstance(v, str) else v
        for k, v in status.items()
        if isinstance(v, str | int | float | bool)
    }
    if status.get("conditions"):
        result["conditions"] = conditions(obj)
    return result


def selected_pods(ctx: ApiSource, namespace: str, obj: dict[str, Any], limit: int) -> list[client.V1Pod]:
    """The object's pods by its selector's matchLabels, the not-ready ones first."""
    match = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels")
    if not match:
        return []
    with api_errors(f"pods of {obj['kind'].lower()} {namespace}/{obj['metadata']['name']}"):
        pods = core(ctx).list_namespaced_pod(namespace, label_selector=selector_string(match)).items
    live = [p for p in pods if p.metadata.deletion_timestamp is None]
    return sorted(live, key=lambda p: (is_ready(p), p.metadata.name))[:limit]


def pods_on_node(ctx: ApiSource, node: str, limit: int) -> list[dict[str, Any]]:
    with api_errors(f"pods on node {node}"):
        pods = core(ctx).list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
    ordered = sorted(pods, key=lambda p: (is_ready(p), p.metadata.namespace, p.metadata.name))
    return [
        {
            "pod": f"{p.metadata.namespace}/{p.metadata.name}",
            "phase": p.status.phase if p.status else None,
            "ready": is_ready(p),
        }
        for p in ordered[:limit]
    ]


@dataclass
class LogCollector:
    """Last lines of each started container, within one character budget for all of them."""

    ctx: ApiSource
    tail_lines: int
    budget: int = field(default_factory=lambda: LOG_BUDGET)
    logs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    truncated: bool = False

    def collect(self, pod: client.V1Pod) -> None:
        name, namespace = pod.metadata.name, pod.metadata.namespace
        statuses = {}
        if pod.status:
            statuses = {
                s.name: s
                for s in [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]
            }
        for container in [*(pod.spec.init_containers or []), *pod.spec.containers]:
            cs = statuses.get(container.name)
            state = cs.state if cs else None
            if state is not None and (state.running or state.terminated):
                previous = False
            elif cs is not None and cs.restart_count and cs.last_state and cs.last_state.terminated:
                previous = True  # waiting to restart (e.g. CrashLoopBackOff): the crashed run's log
            else:
                waiting = state.waiting.reason if state is not None and state.waiting else "no status yet"
                self.notes.append(f"{name}/{container.name}: not started ({waiting}), no log")
                continue
            self._read(namespace, name, container.name, previous)

    def _read(self, namespace: str, pod: str, container: str, previous: bool) -> None:
        if self.budget <= 0:
            self.truncated = True
            self.notes.append(f"{pod}/{container}: skipped, log output limit reached")
            return
        try:
            text = read_log(
                core(self.ctx),
                namespace,
                pod,
                container=container,
                tail_lines=self.tail_lines,
                previous=previous,
            )
        except ApiException as exc:  # e.g. the pod went away or the container is restarting
            self.notes.append(f"{pod}/{container}: log unavailable ({exc.status} {exc.reason})")
            return
        lines = []
        for line in text.splitlines()[-self.tail_lines :]:
            line = clip(line)
            if len(line) > self.budget:
                self.truncated, self.budget = True, 0  # the rest is skipped, with a note each
                break
            self.budget -= len(line)
            lines.append(line)
        self.logs.append({"pod": pod, "container": container, "previous": previous, "lines": lines})


def pod_details(pod: client.V1Pod) -> dict[str, Any]:
    data = pod_summary(pod)
    data["conditions"] = [
        {"type": c.type, "status": c.status, "reason": c.reason, "message": clip(c.message)}
        for c in (pod.status.conditions or [] if pod.status else [])
        if c.status != "True"
    ]
    return data
