"""Is a pod's node the root cause? One place for the node Ready check (the intake's suppression
and the pod actions' pre-check read it the same way)."""

from __future__ import annotations

from typing import Any


def node_not_ready(node: Any) -> str | None:
    """Why the node (a ``V1Node`` or its dict) is not Ready, or None when it is.

    Ready is the ``Ready`` condition with status ``True``; ``False`` (the kubelet says so) and
    ``Unknown`` (the node controller lost the kubelet: unreachable) are both NotReady. A node
    without the condition has not reported yet and is not judged here."""
    status = node.get("status") if isinstance(node, dict) else getattr(node, "status", None)
    conditions = (
        status.get("conditions") if isinstance(status, dict) else getattr(status, "conditions", None)
    ) or []
    for condition in conditions:
        get = condition.get if isinstance(condition, dict) else lambda k, c=condition: getattr(c, k, None)
        if get("type") != "Ready":
            continue
        if get("status") == "True":
            return None
        reason = get("reason") or ("NodeStatusUnknown" if get("status") == "Unknown" else "KubeletNotReady")
        message = get("message") or ""
        return f"Ready={get('status')} ({reason}{': ' + message if message else ''})"
    return None


def node_problem(core: Any, node_name: str) -> str | None:
    """Why the named node is not Ready (gone included), or None when it is Ready."""
    from kubernetes.client.exceptions import ApiException

    try:
        node = core.read_node(node_name)
    except ApiException as exc:
        if exc.status == 404:
            return "the node no longer exists"
        raise
    return node_not_ready(node)
