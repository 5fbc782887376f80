"""Read-only health of a cluster's control plane, for alerts no action can safely fix.

``collect_cluster_health`` gathers what a person paged for KubeAPIDown, KubeSchedulerDown,
KubeAPIErrorBudgetBurn... looks at first: the API server's own health checks (``/readyz`` and
``/livez`` with ``verbose``, which list each failing check as ``[-]name failed``), its version,
the nodes' readiness, the pods of ``kube-system`` (the control-plane components of a kubeadm
cluster run there as static pods), the newest Warning events of the whole cluster and the
aggregated APIs (APIServices) that are not Available. Every part is bounded, and a part the
API cannot answer (an APIService group a cluster does not serve, a health endpoint a proxy
hides) is reported as such instead of failing the step: the point is the page, with what
could be read.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from pydantic import Field

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName

HEALTH_TIMEOUT = 10.0  # seconds per health endpoint: a hung API server is itself the finding
_EPOCH = datetime.datetime.min.replace(tzinfo=datetime.UTC)


class ClusterHealthParams(ActionParams):
    namespace: NamespaceName = Field(default="kube-system", description="Where the control-plane pods run")
    max_events: int = Field(default=20, ge=1, le=200, description="Newest Warning events kept")
    max_pods: int = Field(default=30, ge=1, le=200, description="Control-plane pods listed (not-ready first)")


def health_check(ctx: ActionContext, path: str) -> dict[str, Any]:
    """``GET <path>?verbose``: ok, the HTTP status, and the checks it reports failed."""
    from kubernetes.client.exceptions import ApiException  # here: DAG parsing must not load it

    from kubernaut.kube.diagnostics import clip

    try:
        response = ctx.api_client.call_api(
            path,
            "GET",
            query_params=[("verbose", "true")],
            header_params={"Accept": "application/json, text/plain, */*"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=HEALTH_TIMEOUT,
        )
        status, body = int(response.status), response.data.decode("utf-8", "replace")
    except ApiException as exc:
        status, body = int(exc.status or 0), str(exc.body or exc.reason or "")
    except Exception as exc:  # unreachable, timed out: the finding itself
        return {"ok": False, "status": None, "error": clip(f"{type(exc).__name__}: {exc}")}
    try:  # some API servers (and the sandbox) answer a JSON status object
        parsed = json.loads(body)
        text = str(parsed.get("status", body)) if isinstance(parsed, dict) else body
    except ValueError:
        text = body
    failed = [line[3:].split(" ")[0] for line in text.splitlines() if line.startswith("[-]")]
    return {
        "ok": status == 200 and not failed,
        "status": status,
        "failed_checks": failed[:50],
        "text": clip(text),
    }


def _pods(ctx: ActionContext, namespace: str, limit: int) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException

    from kubernaut.kube.clients import core
    from kubernaut.kube.pods import is_ready

    try:
        pods = core(ctx).list_namespaced_pod(namespace).items
    except ApiException as exc:
        return {"error": f"cannot list pods in {namespace}: {exc.status} {exc.reason}"}
    ordered = sorted(pods, key=lambda p: (is_ready(p), p.metadata.name))
    listed = [
        {
            "pod": p.metadata.name,
            "phase": p.status.phase if p.status else None,
            "ready": is_ready(p),
            "restarts": sum(s.restart_count or 0 for s in (p.status.container_statuses or []) if p.status),
            "node": p.spec.node_name if p.spec else None,
        }
        for p in ordered[:limit]
    ]
    return {"total": len(pods), "not_ready": sum(not is_ready(p) for p in pods), "pods": listed}


def _nodes(ctx: ActionContext) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException

    from kubernaut.kube.clients import core

    try:
        nodes = core(ctx).list_node().items
    except ApiException as exc:
        return {"error": f"cannot list nodes: {exc.status} {exc.reason}"}

    def ready(node: Any) -> bool:
        conditions = (node.status.conditions if node.status else None) or []
        return any(c.type == "Ready" and c.status == "True" for c in conditions)

    not_ready = sorted(n.metadata.name for n in nodes if not ready(n))
    return {"total": len(nodes), "ready": len(nodes) - len(not_ready), "not_ready": not_ready[:50]}


def _warning_events(ctx: ActionContext, limit: int) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException

    from kubernaut.kube.clients import core
    from kubernaut.kube.diagnostics import clip

    try:
        items = core(ctx).list_event_for_all_namespaces(field_selector="type=Warning").items
    except ApiException as exc:
        return {"error": f"cannot list events: {exc.status} {exc.reason}"}

    def when(ev: Any) -> datetime.datetime:
        stamp = ev.last_timestamp or ev.event_time or ev.first_timestamp or ev.metadata.creation_timestamp
        return stamp if isinstance(stamp, datetime.datetime) else _EPOCH

    newest = sorted(items, key=when, reverse=True)[:limit]
    events = [
        {
            "object": f"{ev.involved_object.kind}/{ev.metadata.namespace}/{ev.involved_object.name}",
            "reason": ev.reason,
            "message": clip(ev.message),
            "count": ev.count or 1,
            "last": when(ev).isoformat() if when(ev) != _EPOCH else None,
        }
        for ev in newest
    ]
    return {"total": len(items), "events": events}


def _apiservices(ctx: ActionContext) -> dict[str, Any]:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        found = client.CustomObjectsApi(ctx.api_client).list_cluster_custom_object(
            "apiregistration.k8s.io", "v1", "apiservices"
        )
    except ApiException as exc:
        return {"error": f"cannot list APIServices: {exc.status} {exc.reason}"}
    unavailable = []
    for item in found.get("items") or []:
        conditions = (item.get("status") or {}).get("conditions") or []
        available = next((c for c in conditions if c.get("type") == "Available"), None)
        if available is not None and available.get("status") != "True":
            unavailable.append(
                {
                    "name": item["metadata"]["name"],
                    "reason": available.get("reason"),
                    "message": available.get("message"),
                }
            )
    return {"total": len(found.get("items") or []), "unavailable": unavailable[:50]}


@register
class CollectClusterHealth(Action[ClusterHealthParams]):
    kind = "kubernetes"
    name = "collect_cluster_health"
    Params = ClusterHealthParams
    summary = (
        "Read the API server's /readyz and /livez checks, node readiness, control-plane pods, "
        "recent Warning events and unavailable APIServices (bounded; changes nothing)."
    )

    def run(self, ctx: ActionContext, params: ClusterHealthParams) -> ActionResult:
        readyz, livez = health_check(ctx, "/readyz"), health_check(ctx, "/livez")
        output: dict[str, Any] = {
            "readyz": readyz,
            "livez": livez,
            "nodes": _nodes(ctx),
            "control_plane": _pods(ctx, params.namespace, params.max_pods),
            "warning_events": _warning_events(ctx, params.max_events),
            "apiservices": _apiservices(ctx),
        }
        failing = [*readyz.get("failed_checks", []), *livez.get("failed_checks", [])]
        problems = []
        if not readyz["ok"] or not livez["ok"]:
            problems.append(f"API server health: failing checks {sorted(set(failing)) or 'unknown'}")
        if output["nodes"].get("not_ready"):
            problems.append(f"nodes not Ready: {', '.join(output['nodes']['not_ready'])}")
        if output["control_plane"].get("not_ready"):
            problems.append(f"{output['control_plane']['not_ready']} pods in {params.namespace} not Ready")
        down = [a["name"] for a in output["apiservices"].get("unavailable") or []]
        if down:
            problems.append(f"APIServices unavailable: {', '.join(down)}")
        output["summary"] = (
            "; ".join(problems) or "API server ready and live, nodes Ready, control-plane pods Ready"
        )
        return ActionResult(output=output)


__all__ = ["CollectClusterHealth"]
