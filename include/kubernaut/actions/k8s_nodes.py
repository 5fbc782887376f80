"""Node actions: cordon, uncordon, drain (Eviction API, PDBs honoured), taint, untaint."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import Field

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult, PreconditionFailed
from kubernaut.actions.registry import register
from kubernaut.kube.clients import MERGE_PATCH, core, dry
from kubernaut.kube.errors import api_errors, retry_on_conflict
from kubernaut.kube.names import ObjectName
from kubernaut.kube.objects import patch_object, read_object
from kubernaut.kube.pods import controller_of
from kubernaut.kube.waiting import wait_for
from kubernaut.policy import Bounds, Target

MIRROR_POD = "kubernetes.io/config.mirror"
TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class NodeParams(ActionParams):
    node: ObjectName


def set_unschedulable(
    ctx: ActionContext, node: str, value: bool, *, journal: bool
) -> tuple[bool, dict[str, Any] | None]:
    """Conditional merge patch of `spec.unschedulable`; returns (value before, undo record)."""

    def attempt() -> tuple[bool, dict[str, Any] | None]:
        obj = read_object(ctx.api_client, "Node", None, node)
        before = bool(obj["spec"].get("unschedulable"))
        undo = ctx.remember_prior({"unschedulable": before}) if journal else None
        if before != value:
            patch = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                # null removes the field, which is how an uncordoned node looks
                "spec": {"unschedulable": True if value else None},
            }
            patch_object(ctx.api_client, "Node", None, node, patch, MERGE_PATCH, dry(ctx))
        return before, undo

    return retry_on_conflict(attempt)


def wait_unschedulable(ctx: ActionContext, node: str, value: bool) -> None:
    def check() -> tuple[bool, bool]:
        seen = bool(read_object(ctx.api_client, "Node", None, node)["spec"].get("unschedulable"))
        return seen == value, seen

    wait_for(ctx, check, what=f"node {node} unschedulable={value}")


def restore_schedulable(ctx: ActionContext, node: str, record: dict[str, Any]) -> dict[str, Any]:
    before, _ = set_unschedulable(ctx, node, bool(record["unschedulable"]), journal=False)
    return {"restored": before != bool(record["unschedulable"]), "unschedulable": record["unschedulable"]}


@register
class CordonNode(Action[NodeParams]):
    kind = "kubernetes"
    name = "cordon_node"
    Params = NodeParams
    mutating = True
    summary = "Mark a node unschedulable (running pods stay)."
    changes = "node `spec.unschedulable: true` (merge patch, resourceVersion)"
    undo_doc = "uncordons the node if it was schedulable before"
    dry_run_doc = "`dryRun=All` patch"

    def targets(self, ctx: ActionContext, params: NodeParams) -> list[Target]:
        return [Target("Node", None, params.node)]

    def bounds(self, ctx: ActionContext, params: NodeParams) -> Bounds:
        return Bounds(cordon_nodes=(params.node,))

    def run(self, ctx: ActionContext, params: NodeParams) -> ActionResult:
        before, undo = set_unschedulable(ctx, params.node, True, journal=True)
        output = {"node": params.node, "unschedulable_before": before, "dry_run": ctx.dry_run}
        return ActionResult(output=output, undo=undo, changed=not before and not ctx.dry_run)

    def verify(self, ctx: ActionContext, params: NodeParams, result: ActionResult) -> None:
        wait_unschedulable(ctx, params.node, True)

    def undo(self, ctx: ActionContext, params: NodeParams, record: dict[str, Any]) -> dict[str, Any]:
        return restore_schedulable(ctx, params.node, record)


@register
class UncordonNode(Action[NodeParams]):
    kind = "kubernetes"
    name = "uncordon_node"
    Params = NodeParams
    mutating = True
    summary = "Mark a node schedulable again."
    changes = "removes node `spec.unschedulable` (merge patch, resourceVersion)"
    undo_doc = "cordons the node again if it was unschedulable before"
    dry_run_doc = "`dryRun=All` patch"

    def targets(self, ctx: ActionContext, params: NodeParams) -> list[Target]:
        return [Target("Node", None, params.node)]

    def run(self, ctx: ActionContext, params: NodeParams) -> ActionResult:
        before, undo = set_unschedulable(ctx, params.node, False, journal=True)
        output = {"node": params.node, "unschedulable_before": before, "dry_run": ctx.dry_run}
        return ActionResult(output=output, undo=undo, changed=before and not ctx.dry_run)

    def verify(self, ctx: ActionContext, params: NodeParams, result: ActionResult) -> None:
        wait_unschedulable(ctx, params.node, False)

    def undo(self, ctx: ActionContext, params: NodeParams, record: dict[str, Any]) -> dict[str, Any]:
        return restore_schedulable(ctx, params.node, record)


# --- drain ------------------------------------------------------------------------------------


class DrainNodeParams(NodeParams):
    grace_period_seconds: int | None = Field(default=None, ge=0, description="Override pods' grace periods")
    force: bool = Field(
        default=False, description="Also evict pods without a controller (they are not recreated)"
    )


def evictable_pods(ctx: ActionContext, node: str, *, force: bool) -> list[client.V1Pod]:
    """Pods a drain evicts, as `kubectl drain --ignore-daemonsets`: DaemonSet-owned and mirror
    pods are skipped; a bare pod refuses the drain unless ``force``."""
    with api_errors(f"pods on node {node}"):
        pods = core(ctx).list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
    result, bare = [], []
    for pod in pods:
        if pod.metadata.deletion_timestamp is not None:
            continue
        if MIRROR_POD in (pod.metadata.annotations or {}):
            continue
        owner = controller_of(pod.metadata)
        if owner is not None and owner.kind == "DaemonSet":
            continue
        if owner is None:
            bare.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
        result.append(pod)
    if bare and not force:
        raise PreconditionFailed(
            f"node {node} runs pods without a controller that nothing would recreate: "
            f"{', '.join(sorted(bare))}; set force: true to evict them anyway"
        )
    return result


def evict(ctx: ActionContext, pod: client.V1Pod, grace: int | None) -> bool:
    """One eviction; False when a PodDisruptionBudget refuses it for now (429)."""
    namespace, name = pod.metadata.namespace, pod.metadata.name
    body = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        delete_options=client.V1DeleteOptions(
            grace_period_seconds=grace, preconditions=client.V1Preconditions(uid=pod.metadata.uid)
        ),
    )
    try:
        core(ctx).create_namespaced_pod_eviction(name, namespace, body, **dry(ctx))
    except ApiException as exc:
        if exc.status == 429:
            return False
        if exc.status in (404, 409):  # gone already, or a successor with another uid
            return True
        with api_errors(f"eviction of pod {namespace}/{name}"):
            raise
    return True


@register
class DrainNode(Action[DrainNodeParams]):
    kind = "kubernetes"
    name = "drain_node"
    Params = DrainNodeParams
    mutating = True
    summary = "Cordon a node and evict its pods through the Eviction API (PDBs honoured), like kubectl drain."
    changes = "node `spec.unschedulable: true`; evicts its pods (not DaemonSet or mirror pods); 429 retried"
    undo_doc = (
        "uncordons the node if it was schedulable before (evicted pods are rescheduled by their owners)"
    )
    dry_run_doc = "`dryRun=All` cordon and evictions (a PDB refusal is reported, not waited for)"

    def targets(self, ctx: ActionContext, params: DrainNodeParams) -> list[Target]:
        # The evicted pods are changed too, as consequences: only the Node is checked (see Target).
        pods = evictable_pods(ctx, params.node, force=True)
        return [Target("Node", None, params.node)] + [
            Target("Pod", p.metadata.namespace, p.metadata.name, check_labels=False, check_protection=False)
            for p in pods
        ]

    def bounds(self, ctx: ActionContext, params: DrainNodeParams) -> Bounds:
        return Bounds(cordon_nodes=(params.node,))

    def precheck(self, ctx: ActionContext, params: DrainNodeParams) -> None:
        read_object(ctx.api_client, "Node", None, params.node)
        evictable_pods(ctx, params.node, force=params.force)

    def run(self, ctx: ActionContext, params: DrainNodeParams) -> ActionResult:
        before, undo = set_unschedulable(ctx, params.node, True, journal=True)
        pending = evictable_pods(ctx, params.node, force=params.force)
        evicted: list[str] = []
        while pending:
            blocked = []
            for pod in pending:
                if evict(ctx, pod, params.grace_period_seconds):
                    evicted.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
                else:
                    blocked.append(pod)
            pending = blocked
            if not pending or ctx.dry_run:
                break
            if ctx.remaining() <= ctx.poll_interval:
                names = ", ".join(f"{p.metadata.namespace}/{p.metadata.name}" for p in pending)
                raise PreconditionFailed(
                    f"drain of node {params.node}: disruption budgets still refuse evicting {names}; "
                    "the node stays cordoned (undo uncordons it)"
                )
            time.sleep(ctx.poll_interval)  # a PDB allows more once replacements are Ready elsewhere
        output = {
            "node": params.node,
            "unschedulable_before": before,
            "evicted": sorted(evicted),
            "blocked_by_pdb": sorted(f"{p.metadata.namespace}/{p.metadata.name}" for p in pending),
            "dry_run": ctx.dry_run,
        }
        return ActionResult(output=output, undo=undo, changed=not ctx.dry_run)

    def verify(self, ctx: ActionContext, params: DrainNodeParams, result: ActionResult) -> None:
        wait_unschedulable(ctx, params.node, True)

        def drained() -> tuple[bool, list[str]]:
            left = evictable_pods(ctx, params.node, force=True)
            return not left, [f"{p.metadata.namespace}/{p.metadata.name}" for p in left]

        wait_for(ctx, drained, what=f"drain of node {params.node}")

    def undo(self, ctx: ActionContext, params: DrainNodeParams, record: dict[str, Any]) -> dict[str, Any]:
        return restore_schedulable(ctx, params.node, record)


# --- taints -----------------------------------------------------------------------------------


class TaintParams(NodeParams):
    key: str = Field(min_length=1, max_length=316, pattern=r"^([a-z0-9.-]+/)?[A-Za-z0-9][-A-Za-z0-9_.]*$")
    value: str = Field(default="", max_length=63)
    effect: TaintEffect = "NoSchedule"


class UntaintParams(NodeParams):
    key: str = Field(min_length=1, max_length=316)
    effect: TaintEffect | None = Field(default=None, description="Only this effect (default: every effect)")


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Equal as sets of taints (key order inside a taint and list order do not matter)."""
    return sorted(json.dumps(t, sort_keys=True) for t in a) == sorted(
        json.dumps(t, sort_keys=True) for t in b
    )


def _matches(taint: dict[str, Any], key: str, effect: str | None) -> bool:
    return bool(taint.get("key") == key and (effect is None or taint.get("effect") == effect))


def write_taints(
    ctx: ActionContext, node: str, change: Any, *, journal_key: tuple[str, str | None] | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None]:
    """Read-modify-write of `spec.taints` (no merge key: the whole list is replaced, so the
    resourceVersion guards it). ``change`` maps the current list to the new one."""

    def attempt() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None]:
        obj = read_object(ctx.api_client, "Node", None, node)
        before = list(obj["spec"].get("taints") or [])
        undo = None
        if journal_key is not None:
            key, effect = journal_key
            undo = ctx.remember_prior(
                {"key": key, "effect": effect, "taints": [t for t in before if _matches(t, key, effect)]}
            )
        after = change(before)
        if after != before:
            patch = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "spec": {"taints": after or None},
            }
            patch_object(ctx.api_client, "Node", None, node, patch, MERGE_PATCH, dry(ctx))
        return before, after, undo

    return retry_on_conflict(attempt)


def restore_taints(ctx: ActionContext, node: str, record: dict[str, Any]) -> dict[str, Any]:
    """Put back the recorded taints of the key (and effect); other taints stay as they are now."""
    key, effect, prior = record["key"], record.get("effect"), record["taints"]

    def change(current: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = [t for t in current if not _matches(t, key, effect)]
        return current if _same(current, kept + prior) else kept + prior

    before, after, _ = write_taints(ctx, node, change, journal_key=None)
    same = _same(before, after)
    return {"restored": not same, "taints": prior}


class _TaintAction:
    def targets(self, ctx: ActionContext, params: NodeParams) -> list[Target]:
        return [Target("Node", None, params.node)]


@register
class TaintNode(_TaintAction, Action[TaintParams]):
    kind = "kubernetes"
    name = "taint_node"
    Params = TaintParams
    mutating = True
    summary = "Add (or update) a taint key:effect on a node."
    changes = "node `spec.taints` (read-modify-write, resourceVersion)"
    undo_doc = "restores the recorded taints of that key and effect"
    dry_run_doc = "`dryRun=All` patch"

    def run(self, ctx: ActionContext, params: TaintParams) -> ActionResult:
        taint = {
            "key": params.key,
            "effect": params.effect,
            **({"value": params.value} if params.value else {}),
        }

        def change(current: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if taint in current:
                return current  # already tainted exactly so (e.g. a retried step)
            kept = [t for t in current if not _matches(t, params.key, params.effect)]
            return [*kept, taint]

        before, after, undo = write_taints(ctx, params.node, change, journal_key=(params.key, params.effect))
        same = _same(before, after)
        output = {"node": params.node, "taint": taint, "dry_run": ctx.dry_run}
        return ActionResult(output=output, undo=undo, changed=not same and not ctx.dry_run)

    def verify(self, ctx: ActionContext, params: TaintParams, result: ActionResult) -> None:
        wanted = result.output["taint"]

        def check() -> tuple[bool, list[Any]]:
            taints = read_object(ctx.api_client, "Node", None, params.node)["spec"].get("taints") or []
            return any({k: t.get(k) for k in wanted} == wanted for t in taints), taints

        wait_for(ctx, check, what=f"taint {params.key}:{params.effect} on node {params.node}")

    def undo(self, ctx: ActionContext, params: TaintParams, record: dict[str, Any]) -> dict[str, Any]:
        return restore_taints(ctx, params.node, record)


@register
class UntaintNode(_TaintAction, Action[UntaintParams]):
    kind = "kubernetes"
    name = "untaint_node"
    Params = UntaintParams
    mutating = True
    summary = "Remove a node's taints of a key (optionally only one effect)."
    changes = "node `spec.taints` (read-modify-write, resourceVersion)"
    undo_doc = "puts the removed taints back"
    dry_run_doc = "`dryRun=All` patch"

    def run(self, ctx: ActionContext, params: UntaintParams) -> ActionResult:
        def change(current: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [t for t in current if not _matches(t, params.key, params.effect)]

        before, after, undo = write_taints(ctx, params.node, change, journal_key=(params.key, params.effect))
        removed = [t for t in before if t not in after]
        output = {"node": params.node, "removed": removed, "dry_run": ctx.dry_run}
        return ActionResult(output=output, undo=undo, changed=bool(removed) and not ctx.dry_run)

    def verify(self, ctx: ActionContext, params: UntaintParams, result: ActionResult) -> None:
        def check() -> tuple[bool, list[Any]]:
            taints = read_object(ctx.api_client, "Node", None, params.node)["spec"].get("taints") or []
            return not any(_matches(t, params.key, params.effect) for t in taints), taints

        wait_for(ctx, check, what=f"removal of taint {params.key} from node {params.node}")

    def undo(self, ctx: ActionContext, params: UntaintParams, record: dict[str, Any]) -> dict[str, Any]:
        return restore_taints(ctx, params.node, record)


__all__ = ["CordonNode", "DrainNode", "TaintNode", "UncordonNode", "UntaintNode"]
