"""Cluster API (``cluster.x-k8s.io/v1beta1``) node capacity: scale a MachineDeployment within
bounds, replace the Machine behind a node.

``scale_node_group`` sets ``spec.replicas`` of a MachineDeployment (JSON patch with the
resourceVersion read), within the policy's ``max_replicas``, the step's own ``min_replicas`` /
``max_replicas`` and the cluster-autoscaler's node-group bounds when the MachineDeployment
carries them (``cluster.x-k8s.io/cluster-api-autoscaler-node-group-{min,max}-size``), then
waits until the MachineDeployment counts exactly that many ready Machines.

``replace_node`` deletes the Machine that backs a Node (the Node's ``cluster.x-k8s.io/machine``
annotation, confirmed by the Machine's ``status.nodeRef``), uid precondition: the Machine
controller drains and deletes the node and its infrastructure, and the owning MachineSet
creates a new Machine, as the Cluster API documents for replacing an unhealthy node (what a
MachineHealthCheck remediation does). A Machine no MachineSet owns (nothing would replace
it) or a control-plane Machine is refused.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionParams,
    ActionResult,
    PreconditionFailed,
    VerificationFailed,
)
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Bounds, Target

MACHINE_ANNOTATION = "cluster.x-k8s.io/machine"
NAMESPACE_ANNOTATION = "cluster.x-k8s.io/cluster-namespace"
MIN_SIZE = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"
MAX_SIZE = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"
CONTROL_PLANE_LABEL = "cluster.x-k8s.io/control-plane"
DEPLOYMENT_LABEL = "cluster.x-k8s.io/deployment-name"
DELETE_MACHINE = "cluster.x-k8s.io/delete-machine"


# --- scale_node_group ---------------------------------------------------------------------------


class ScaleNodeGroupParams(ActionParams):
    namespace: NamespaceName
    machine_deployment: ObjectName
    replicas: int | None = Field(default=None, ge=0, description="The new replica count")
    delta: int | None = Field(default=None, description="Or: add (or remove, if negative) this many machines")
    min_replicas: int = Field(default=1, ge=0, description="Never below this many machines")
    max_replicas: int | None = Field(default=None, ge=1, description="Never above (also the policy's max)")
    wait_timeout: float = Field(default=600, gt=0, description="Seconds to wait for the machines' nodes")

    @model_validator(mode="after")
    def _one_way(self) -> ScaleNodeGroupParams:
        if (self.replicas is None) == (self.delta is None):
            raise ValueError("give either replicas or delta, not both or neither")
        if self.delta == 0:
            raise ValueError("delta must not be 0")
        return self


def _bounds_of(md: dict[str, Any], params: ScaleNodeGroupParams) -> tuple[int, int | None]:
    """(lowest, highest) replica count allowed for this MachineDeployment."""
    annotations = md["metadata"].get("annotations") or {}
    low, high = params.min_replicas, params.max_replicas
    try:
        if MIN_SIZE in annotations:
            low = max(low, int(annotations[MIN_SIZE]))
        if MAX_SIZE in annotations:
            top = int(annotations[MAX_SIZE])
            high = top if high is None else min(high, top)
    except ValueError as exc:
        raise PreconditionFailed(
            f"machinedeployment {md['metadata']['namespace']}/{md['metadata']['name']}: "
            f"autoscaler size annotation is not a number: {exc}"
        ) from exc
    return low, high


def wanted_replicas(md: dict[str, Any], params: ScaleNodeGroupParams) -> tuple[int, int]:
    """(current, new) replicas; PreconditionFailed when the new count leaves the bounds."""
    what = f"machinedeployment {md['metadata']['namespace']}/{md['metadata']['name']}"
    current = int(md["spec"].get("replicas", 1))
    new = params.replicas if params.replicas is not None else current + int(params.delta or 0)
    low, high = _bounds_of(md, params)
    if new < low:
        raise PreconditionFailed(f"{what}: {new} machines is below the lower bound {low}")
    if high is not None and new > high:
        raise PreconditionFailed(f"{what}: {new} machines is above the upper bound {high}")
    return current, new


def _set_replicas(ctx: ActionContext, namespace: str, name: str, md: dict[str, Any], replicas: int) -> None:
    from kubernaut.actions.kubernetes.guards import guarded
    from kubernaut.kube.clients import JSON_PATCH, dry
    from kubernaut.kube.objects import patch_object

    ops = guarded(
        md["metadata"]["resourceVersion"], [{"op": "replace", "path": "/spec/replicas", "value": replicas}]
    )
    patch_object(ctx.api_client, "MachineDeployment", namespace, name, ops, JSON_PATCH, dry(ctx))


def _machines(ctx: ActionContext, md: dict[str, Any]) -> list[str]:
    """Names of the MachineDeployment's machines (label ``cluster.x-k8s.io/deployment-name``)."""
    from kubernaut.kube.clients import custom
    from kubernaut.kube.errors import api_errors

    meta = md["metadata"]
    with api_errors(f"machines of machinedeployment {meta['namespace']}/{meta['name']}"):
        found = custom(ctx).list_namespaced_custom_object(
            "cluster.x-k8s.io",
            "v1beta1",
            meta["namespace"],
            "machines",
            label_selector=f"{DEPLOYMENT_LABEL}={meta['name']}",
        )
    return sorted(str(m["metadata"]["name"]) for m in found.get("items") or [])


def _mark_added(ctx: ActionContext, md: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """Before scaling back down: annotate the machines the step added with
    ``cluster.x-k8s.io/delete-machine``, which every MachineSet delete policy removes first, so
    the machines that were there before stay (the default policy, Random, might pick any)."""
    from kubernaut.kube.clients import MERGE_PATCH
    from kubernaut.kube.objects import patch_object

    if "machines" not in record or int(md["spec"].get("replicas", 1)) <= int(record["replicas"]):
        return []
    added = [m for m in _machines(ctx, md) if m not in set(record["machines"])]
    patch = {"metadata": {"annotations": {DELETE_MACHINE: "kubernaut-undo"}}}
    for name in added:
        patch_object(ctx.api_client, "Machine", md["metadata"]["namespace"], name, patch, MERGE_PATCH, {})
    return added


@register
class ScaleNodeGroup(Action[ScaleNodeGroupParams]):
    kind = "kubernetes"
    name = "scale_node_group"
    Params = ScaleNodeGroupParams
    mutating = True
    summary = "Scale a Cluster API MachineDeployment (node group) within bounds; waits for the nodes."
    changes = (
        "MachineDeployment `spec.replicas` (JSON patch, resourceVersion), within the policy's max_replicas, "
        "the step's bounds and the autoscaler node-group size annotations; waits for all machines ready"
    )
    undo_doc = (
        "restores the recorded replica count; scaling back down, it first marks the machines the step "
        "added with `cluster.x-k8s.io/delete-machine`, so those go; waits until they are gone"
    )
    dry_run_doc = "`dryRun=All` patch"

    def _what(self, params: ScaleNodeGroupParams) -> str:
        return f"machinedeployment {params.namespace}/{params.machine_deployment}"

    def _read(self, ctx: ActionContext, params: ScaleNodeGroupParams) -> dict[str, Any]:
        from kubernaut.kube.objects import read_object

        return read_object(ctx.api_client, "MachineDeployment", params.namespace, params.machine_deployment)

    def targets(self, ctx: ActionContext, params: ScaleNodeGroupParams) -> list[Target]:
        return [Target("MachineDeployment", params.namespace, params.machine_deployment)]

    def bounds(self, ctx: ActionContext, params: ScaleNodeGroupParams) -> Bounds:
        if params.replicas is not None:
            return Bounds(replicas=params.replicas)
        return Bounds(replicas=wanted_replicas(self._read(ctx, params), params)[1])

    def precheck(self, ctx: ActionContext, params: ScaleNodeGroupParams) -> None:
        if ctx.prior_undo is None:
            wanted_replicas(self._read(ctx, params), params)

    def run(self, ctx: ActionContext, params: ScaleNodeGroupParams) -> ActionResult:
        from kubernaut.kube.errors import retry_on_conflict

        def attempt() -> ActionResult:
            md = self._read(ctx, params)
            prior = ctx.prior_undo
            if prior is not None:  # a retried step: the count it set stays, never applied twice
                current = int(md["spec"].get("replicas", 1))
                new = current if current != prior["replicas"] else wanted_replicas(md, params)[1]
            else:
                current, new = wanted_replicas(md, params)
            output = {
                "machine_deployment": params.machine_deployment,
                "replicas_before": prior["replicas"] if prior is not None else current,
                "replicas": new,
                "dry_run": ctx.dry_run,
            }
            # The machines there now: an undo that scales down deletes the others, not these.
            undo = ctx.remember_prior({"replicas": current, "machines": _machines(ctx, md)})
            if new != current:
                _set_replicas(ctx, params.namespace, params.machine_deployment, md, new)
            wait = ctx.wait(
                "machines_ready",
                {"namespace": params.namespace, "name": params.machine_deployment, "replicas": new},
                what=f"{self._what(params)} at {new} ready machines",
                within=params.wait_timeout,
            )
            return ActionResult(
                output=output, undo=undo, changed=new != current and not ctx.dry_run, wait=wait
            )

        return retry_on_conflict(attempt)

    def verify(self, ctx: ActionContext, params: ScaleNodeGroupParams, result: ActionResult) -> None:
        seen = int(self._read(ctx, params)["spec"].get("replicas", 1))
        if seen != result.output["replicas"]:
            raise VerificationFailed(
                f"{self._what(params)} has {seen} replicas, not {result.output['replicas']}"
            )

    def undo(
        self, ctx: ActionContext, params: ScaleNodeGroupParams, record: dict[str, Any]
    ) -> dict[str, Any]:
        from kubernaut.kube.errors import retry_on_conflict

        def attempt() -> dict[str, Any]:
            md = self._read(ctx, params)
            if int(md["spec"].get("replicas", 1)) == record["replicas"]:
                return {"restored": False, "reason": f"already {record['replicas']} replicas"}
            marked = _mark_added(ctx, md, record)
            _set_replicas(ctx, params.namespace, params.machine_deployment, md, int(record["replicas"]))
            return {"restored": True, "replicas": record["replicas"], "deleting": marked}

        outcome = retry_on_conflict(attempt)
        if outcome["restored"]:
            self._settled(ctx, params, int(record["replicas"]))
        return outcome

    def _settled(self, ctx: ActionContext, params: ScaleNodeGroupParams, replicas: int) -> None:
        """The rollback is done when the machines it removed (and their nodes) are gone."""
        from kubernaut.kube.waiting import wait_for

        def check() -> tuple[bool, dict[str, Any]]:
            status = self._read(ctx, params).get("status") or {}
            counts = (int(status.get("replicas") or 0), int(status.get("readyReplicas") or 0))
            return counts == (replicas, replicas), status

        wait_for(
            ctx, check, what=f"{self._what(params)} back at {replicas} machines", timeout=params.wait_timeout
        )


# --- replace_node -------------------------------------------------------------------------------


class ReplaceNodeParams(ActionParams):
    node: ObjectName
    wait_timeout: float = Field(default=900, gt=0, description="Seconds to wait for the replacement machine")


def machine_of(ctx: ActionContext, node: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Node and the Machine behind it: the node's ``cluster.x-k8s.io/machine`` annotation
    (and cluster-namespace), confirmed by the Machine's ``status.nodeRef``."""
    from kubernaut.kube.errors import NotFound
    from kubernaut.kube.objects import read_object

    node_obj = read_object(ctx.api_client, "Node", None, node)
    annotations = node_obj["metadata"].get("annotations") or {}
    name, namespace = annotations.get(MACHINE_ANNOTATION), annotations.get(NAMESPACE_ANNOTATION)
    if not name or not namespace:
        raise PreconditionFailed(
            f"node {node} is not managed by Cluster API (no {MACHINE_ANNOTATION} / {NAMESPACE_ANNOTATION} "
            "annotation): there is no Machine to replace it with"
        )
    try:
        machine = read_object(ctx.api_client, "Machine", namespace, name)
    except NotFound as exc:
        raise PreconditionFailed(
            f"node {node} names machine {namespace}/{name}, which does not exist"
        ) from exc
    ref = ((machine.get("status") or {}).get("nodeRef") or {}).get("name")
    if ref != node:
        raise PreconditionFailed(f"machine {namespace}/{name} backs node {ref or '<none>'}, not {node}")
    return node_obj, machine


def owning_machineset(machine: dict[str, Any]) -> str:
    meta = machine["metadata"]
    what = f"machine {meta['namespace']}/{meta['name']}"
    if CONTROL_PLANE_LABEL in (meta.get("labels") or {}):
        raise PreconditionFailed(
            f"{what} is a control-plane machine: its control plane provider replaces those, not this action"
        )
    owner = next(
        (
            r
            for r in meta.get("ownerReferences") or []
            if r.get("controller") and r.get("kind") == "MachineSet"
        ),
        None,
    )
    if owner is None:
        raise PreconditionFailed(f"{what} has no MachineSet owner: nothing would create a replacement")
    return str(owner["name"])


@register
class ReplaceNode(Action[ReplaceNodeParams]):
    kind = "kubernetes"
    name = "replace_node"
    Params = ReplaceNodeParams
    mutating = True
    summary = "Replace a node: delete its Cluster API Machine so its MachineSet creates a new one."
    changes = (
        "deletes the Machine behind the node (uid precondition; the Machine controller drains and deletes "
        "the node and its infrastructure); waits until the MachineSet has all its machines ready again"
    )
    undo_doc = "none: a deleted machine and its node cannot come back (recorded not_restorable)"
    dry_run_doc = "`dryRun=All` delete"

    def no_undo_reason(self, params: ReplaceNodeParams) -> str:
        return (
            f"replace_node deleted the Machine behind node {params.node}: a deleted machine, its "
            "infrastructure and its node cannot be brought back; its MachineSet creates a new one"
        )

    def targets(self, ctx: ActionContext, params: ReplaceNodeParams) -> list[Target]:
        from kubernaut.kube.errors import NotFound

        targets = [Target("Node", None, params.node)]
        try:
            _, machine = machine_of(ctx, params.node)
        except (PreconditionFailed, NotFound):
            return targets  # precheck says why
        return [*targets, Target("Machine", machine["metadata"]["namespace"], machine["metadata"]["name"])]

    def bounds(self, ctx: ActionContext, params: ReplaceNodeParams) -> Bounds:
        return Bounds(cordon_nodes=(params.node,))  # the node leaves the pool until it is replaced

    def precheck(self, ctx: ActionContext, params: ReplaceNodeParams) -> None:
        if ctx.prior_undo is not None:
            return  # a retried step: the machine may be gone already (run says so)
        _, machine = machine_of(ctx, params.node)
        owning_machineset(machine)

    def run(self, ctx: ActionContext, params: ReplaceNodeParams) -> ActionResult:
        from kubernetes import client

        from kubernaut.kube.clients import custom, dry
        from kubernaut.kube.errors import Conflict, NotFound, api_errors

        try:
            _, machine = machine_of(ctx, params.node)
        except (NotFound, PreconditionFailed):
            if ctx.prior_undo is None:
                raise
            output = {"node": params.node, "already_done": True, "dry_run": ctx.dry_run}
            return ActionResult(output=output, undo=ctx.prior_undo, changed=True)
        meta = machine["metadata"]
        machineset = owning_machineset(machine)
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=meta["uid"]))
        try:
            with api_errors(f"machine {meta['namespace']}/{meta['name']}"):
                custom(ctx).delete_namespaced_custom_object(
                    "cluster.x-k8s.io",
                    "v1beta1",
                    meta["namespace"],
                    "machines",
                    meta["name"],
                    body=options,
                    **dry(ctx),
                )
        except (Conflict, NotFound):
            pass  # gone already, or another uid (already replaced): the wait tells
        args = {
            "namespace": meta["namespace"],
            "machine": meta["name"],
            "uid": meta["uid"],
            "machineset": machineset,
        }
        output = {
            "node": params.node,
            "machine": f"{meta['namespace']}/{meta['name']}",
            "machine_uid": meta["uid"],
            "machineset": machineset,
            "dry_run": ctx.dry_run,
        }
        wait = ctx.wait(
            "machine_replaced",
            args,
            what=f"replacement of machine {meta['namespace']}/{meta['name']} (node {params.node})",
            within=params.wait_timeout,
        )
        return ActionResult(output=output, undo=ctx.prior_undo, changed=not ctx.dry_run, wait=wait)

    def after_wait(
        self, ctx: ActionContext, params: ReplaceNodeParams, result: ActionResult, outcome: Any
    ) -> ActionResult:
        result = super().after_wait(ctx, params, result, outcome)
        result.output = {**result.output, "machineset_status": outcome.detail}
        return result


__all__ = ["ReplaceNode", "ScaleNodeGroup", "machine_of", "wanted_replicas"]
