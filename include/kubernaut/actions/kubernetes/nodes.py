"""Node actions: cordon, uncordon, drain (kubectl drain's rules, Eviction API, PDBs honoured),
taint, untaint."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionParams,
    ActionResult,
    NotRestorable,
    PreconditionFailed,
    wait_error,
)
from kubernaut.actions.registry import register
from kubernaut.kube.names import ObjectName
from kubernaut.policy import Bounds, Target
from kubernaut.waits.spec import WaitOutcome

if TYPE_CHECKING:
    from kubernetes import client

MIRROR_POD = "kubernetes.io/config.mirror"
TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class NodeParams(ActionParams):
    node: ObjectName


def set_unschedulable(
    ctx: ActionContext, node: str, value: bool, *, journal: bool, extra: dict[str, Any] | None = None
) -> tuple[bool, dict[str, Any] | None]:
    """Conditional merge patch of `spec.unschedulable`; returns (value before, undo record).
    ``extra``: more prior state for the undo record (journaled before the patch)."""
    from kubernaut.kube.clients import MERGE_PATCH, dry
    from kubernaut.kube.errors import retry_on_conflict
    from kubernaut.kube.objects import patch_object, read_object

    def attempt() -> tuple[bool, dict[str, Any] | None]:
        obj = read_object(ctx.api_client, "Node", None, node)
        before = bool(obj["spec"].get("unschedulable"))
        undo = ctx.remember_prior({"unschedulable": before, **(extra or {})}) if journal else None
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
    from kubernaut.kube.objects import read_object
    from kubernaut.kube.waiting import wait_for

    def check() -> tuple[bool, bool]:
        seen = bool(read_object(ctx.api_client, "Node", None, node)["spec"].get("unschedulable"))
        return seen == value, seen

    wait_for(ctx, check, what=f"node {node} unschedulable={value}")


def restore_schedulable(ctx: ActionContext, node: str, record: dict[str, Any]) -> dict[str, Any]:
    from kubernaut.kube.errors import NotFound

    try:
        before, _ = set_unschedulable(ctx, node, bool(record["unschedulable"]), journal=False)
    except NotFound as exc:  # replaced or removed since (replace_node): nothing left to put back
        raise NotRestorable(f"node {node} no longer exists: its schedulability cannot be restored") from exc
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
    delete_emptydir_data: bool = Field(
        default=False, description="Also evict pods with emptyDir volumes (their data is lost)"
    )
    ignore_daemonsets: bool = Field(
        default=True,
        description="Leave DaemonSet pods (their controller ignores the cordon); false refuses the drain",
    )
    skip_wait_for_delete_timeout: int = Field(
        default=1,
        ge=0,
        description=(
            "kubectl drain --skip-wait-for-delete-timeout, for a node whose Ready condition is not "
            "True (its kubelet cannot finish deleting anything): a pod there whose "
            "deletionTimestamp (deletion time + grace period) is more than this many seconds ago "
            "counts as gone; 0 always waits"
        ),
    )


def _name(pod: client.V1Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def _completed(pod: client.V1Pod) -> bool:
    return bool(pod.status and pod.status.phase in ("Succeeded", "Failed"))


def _has_emptydir(pod: client.V1Pod) -> bool:
    volumes = (pod.spec.volumes if pod.spec else None) or []
    return any(v.empty_dir is not None for v in volumes)


@dataclass
class DrainPlan:
    """What `kubectl drain` does with each pod of a node."""

    evict: list[client.V1Pod] = field(default_factory=list)  # running: the Eviction API (PDBs)
    delete: list[client.V1Pod] = field(default_factory=list)  # completed: deleted, nothing to evict
    terminating: list[client.V1Pod] = field(default_factory=list)  # being deleted already: waited for
    skipped: dict[str, list[str]] = field(default_factory=dict)  # DaemonSet and mirror pods
    refused: dict[str, list[str]] = field(default_factory=dict)  # why the drain cannot go on

    @property
    def drained(self) -> list[client.V1Pod]:
        return self.evict + self.delete + self.terminating


REFUSALS = {
    "daemonset": "DaemonSet pods (set ignore_daemonsets: true to leave them)",
    "emptydir": "pods with emptyDir volumes, whose data would be lost (set delete_emptydir_data: true)",
    "unmanaged": "pods without a controller, which nothing would recreate (set force: true to evict them)",
}


def pods_on_node(ctx: ActionContext, node: str) -> list[client.V1Pod]:
    from kubernaut.kube.clients import core
    from kubernaut.kube.errors import api_errors

    with api_errors(f"pods on node {node}"):
        pods: list[client.V1Pod] = (
            core(ctx).list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
        )
    return pods


def drain_plan(ctx: ActionContext, params: DrainNodeParams, *, strict: bool = True) -> DrainPlan:
    """The pods of the node sorted as `kubectl drain` sorts them: mirror pods and (with
    ignore_daemonsets) DaemonSet pods left; pods with emptyDir data or without a controller
    refused unless allowed (completed pods never are); completed pods deleted, others evicted.
    ``strict``: raise PreconditionFailed naming every refused pod."""
    from kubernaut.kube.pods import controller_of

    plan = DrainPlan()
    for pod in pods_on_node(ctx, params.node):
        name = _name(pod)
        if pod.metadata.deletion_timestamp is not None:
            plan.terminating.append(pod)
            continue
        if MIRROR_POD in (pod.metadata.annotations or {}):
            plan.skipped.setdefault("mirror", []).append(name)  # a static pod: its kubelet runs it
            continue
        owner = controller_of(pod.metadata)
        if owner is not None and owner.kind == "DaemonSet":
            # Its controller ignores the cordon and would put it right back.
            sorted_into = plan.skipped if params.ignore_daemonsets else plan.refused
            sorted_into.setdefault("daemonset", []).append(name)
            continue
        if _completed(pod):
            plan.delete.append(pod)
            continue
        refusals = []
        if _has_emptydir(pod) and not params.delete_emptydir_data:
            refusals.append("emptydir")
        if owner is None and not params.force:
            refusals.append("unmanaged")
        for reason in refusals:
            plan.refused.setdefault(reason, []).append(name)
        if not refusals:
            plan.evict.append(pod)
    if strict and plan.refused:
        problems = "; ".join(
            f"{REFUSALS[reason]}: {', '.join(sorted(names))}"
            for reason, names in sorted(plan.refused.items())
        )
        raise PreconditionFailed(f"node {params.node} cannot be drained: it runs {problems}")
    return plan


def _delete_options(pod: client.V1Pod, grace: int | None) -> client.V1DeleteOptions:
    # The uid precondition: this pod, never a same-named successor.
    from kubernetes import client

    return client.V1DeleteOptions(
        grace_period_seconds=grace, preconditions=client.V1Preconditions(uid=pod.metadata.uid)
    )


def evict(ctx: ActionContext, pod: client.V1Pod, grace: int | None) -> bool:
    """One eviction; False when a PodDisruptionBudget refuses it for now (429)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from kubernaut.kube.clients import core, dry
    from kubernaut.kube.errors import api_errors

    namespace, name = pod.metadata.namespace, pod.metadata.name
    body = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        delete_options=_delete_options(pod, grace),
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


def delete_completed(ctx: ActionContext, pod: client.V1Pod, grace: int | None) -> None:
    """A Succeeded or Failed pod holds nothing a budget protects: it is deleted, not evicted."""
    from kubernetes.client.exceptions import ApiException

    from kubernaut.kube.clients import core, dry
    from kubernaut.kube.errors import api_errors

    namespace, name = pod.metadata.namespace, pod.metadata.name
    try:
        core(ctx).delete_namespaced_pod(name, namespace, body=_delete_options(pod, grace), **dry(ctx))
    except ApiException as exc:
        if exc.status in (404, 409):
            return
        with api_errors(f"pod {namespace}/{name}"):
            raise


@register
class DrainNode(Action[DrainNodeParams]):
    kind = "kubernetes"
    name = "drain_node"
    Params = DrainNodeParams
    mutating = True
    summary = "Cordon a node and evict its pods through the Eviction API (PDBs honoured), like kubectl drain."
    changes = (
        "node `spec.unschedulable: true`; evicts its pods (not DaemonSet or mirror pods; emptyDir and "
        "bare pods only when allowed), deletes its completed pods, 429 retried; waits until they are gone"
    )
    undo_doc = (
        "uncordons the node if it was schedulable before; the evicted and deleted pods are not "
        "restorable (their controllers recreate them elsewhere)"
    )
    dry_run_doc = "`dryRun=All` cordon, evictions and deletes (a PDB refusal is reported, not waited for)"

    def targets(self, ctx: ActionContext, params: DrainNodeParams) -> list[Target]:
        # The evicted pods are changed too, as consequences: only the Node is checked (see Target).
        plan = drain_plan(ctx, params, strict=False)
        return [Target("Node", None, params.node)] + [
            Target("Pod", p.metadata.namespace, p.metadata.name, check_labels=False, check_protection=False)
            for p in plan.evict + plan.delete
        ]

    def bounds(self, ctx: ActionContext, params: DrainNodeParams) -> Bounds:
        return Bounds(cordon_nodes=(params.node,))

    def precheck(self, ctx: ActionContext, params: DrainNodeParams) -> None:
        from kubernaut.kube.objects import read_object

        read_object(ctx.api_client, "Node", None, params.node)
        drain_plan(ctx, params)

    def run(self, ctx: ActionContext, params: DrainNodeParams) -> ActionResult:
        plan = drain_plan(ctx, params)
        # The pods it will take away are journaled with the cordon: the undo must name them.
        doomed = [{"pod": _name(p), "uid": p.metadata.uid} for p in plan.evict + plan.delete]
        before, undo = set_unschedulable(ctx, params.node, True, journal=True, extra={"pods": doomed})
        plan = drain_plan(ctx, params)  # cordoned: what is on the node now is final
        grace = params.grace_period_seconds
        for pod in plan.delete:
            delete_completed(ctx, pod, grace)
        evicted: list[client.V1Pod] = []
        pending: list[client.V1Pod] = []
        for pod in plan.evict:
            (evicted if evict(ctx, pod, grace) else pending).append(pod)
        # The wait retries what a budget refused (it allows more once replacements are Ready
        # elsewhere) and ends when every drained pod is deleted, not merely Terminating.
        blocked = [
            {"namespace": p.metadata.namespace, "name": p.metadata.name, "uid": p.metadata.uid}
            for p in pending
        ]
        args = {
            "node": params.node,
            "uids": sorted(p.metadata.uid for p in plan.drained),
            "blocked": blocked,
            "grace": grace,
            "skip_wait_for_delete_timeout": params.skip_wait_for_delete_timeout,
        }
        wait = ctx.wait("drain", args, what=f"drain of node {params.node} (evicted pods deleted)")
        output = {
            "node": params.node,
            "unschedulable_before": before,
            "evicted": sorted(_name(p) for p in evicted),
            "deleted_completed": sorted(_name(p) for p in plan.delete),
            "terminating": sorted(_name(p) for p in plan.terminating),
            "skipped": {k: sorted(v) for k, v in sorted(plan.skipped.items())},
            "blocked_by_pdb": sorted(_name(p) for p in pending),
            # the wait ends when these are deleted from the API, not merely Terminating
            "uids": args["uids"],
            "dry_run": ctx.dry_run,
        }
        return ActionResult(output=output, undo=undo, changed=not ctx.dry_run, wait=wait)

    def after_wait(
        self, ctx: ActionContext, params: DrainNodeParams, result: ActionResult, outcome: WaitOutcome
    ) -> ActionResult:
        detail = outcome.detail if isinstance(outcome.detail, dict) else {}
        if not outcome.done and detail.get("blocked_by_pdb") and outcome.status == "timeout":
            names = ", ".join(detail["blocked_by_pdb"])
            raise PreconditionFailed(
                f"drain of node {params.node}: disruption budgets still refuse evicting {names}; "
                "the node stays cordoned (undo uncordons it)"
            )
        if not outcome.done:
            raise wait_error(outcome)
        output = dict(result.output)
        output["evicted"] = sorted({*output["evicted"], *detail.get("evicted_while_waiting", [])})
        output["blocked_by_pdb"] = []
        return dataclasses.replace(result, output=output)

    def undo(self, ctx: ActionContext, params: DrainNodeParams, record: dict[str, Any]) -> dict[str, Any]:
        restored = restore_schedulable(ctx, params.node, record)  # the node itself comes back first
        still_here = {
            p.metadata.uid for p in pods_on_node(ctx, params.node) if p.metadata.deletion_timestamp is None
        }
        lost = sorted(p["pod"] for p in record.get("pods") or [] if p["uid"] not in still_here)
        if lost:
            node_state = (
                "uncordoned" if not record["unschedulable"] else "left cordoned, as it was before the drain"
            )
            raise NotRestorable(
                f"node {params.node} {node_state}; the pods the drain took away cannot come back: "
                f"{', '.join(lost)} (their controllers, if any, recreate them elsewhere)"
            )
        return restored


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
    from kubernaut.kube.clients import MERGE_PATCH, dry
    from kubernaut.kube.errors import retry_on_conflict
    from kubernaut.kube.objects import patch_object, read_object

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
        from kubernaut.kube.objects import read_object
        from kubernaut.kube.waiting import wait_for

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
        from kubernaut.kube.objects import read_object
        from kubernaut.kube.waiting import wait_for

        def check() -> tuple[bool, list[Any]]:
            taints = read_object(ctx.api_client, "Node", None, params.node)["spec"].get("taints") or []
            return not any(_matches(t, params.key, params.effect) for t in taints), taints

        wait_for(ctx, check, what=f"removal of taint {params.key} from node {params.node}")

    def undo(self, ctx: ActionContext, params: UntaintParams, record: dict[str, Any]) -> dict[str, Any]:
        return restore_taints(ctx, params.node, record)


__all__ = ["CordonNode", "DrainNode", "TaintNode", "UncordonNode", "UntaintNode"]
