"""The safety policy, checked before every mutating step (dry-run included).

Actions declare what they change (``Action.targets``) and the numbers they set
(``Action.bounds``); ``check_policy`` compares both with ``PolicyConfig`` and raises
``PolicyViolation`` (a PreconditionFailed: nothing has changed yet) naming the rule and the object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubernaut.actions.base import PreconditionFailed

if TYPE_CHECKING:
    from kubernaut.actions.base import Action, ActionContext, ActionParams
    from kubernaut.config import PolicyConfig

RULE_PROTECTED_NAMESPACE = "protected_namespace"
RULE_REQUIRE_LABEL = "require_label"
RULE_MAX_REPLICAS = "max_replicas"
RULE_MAX_RESOURCE_FACTOR = "max_resource_factor"
RULE_MAX_NODES_UNSCHEDULABLE = "max_nodes_unschedulable"


@dataclass(frozen=True)
class Target:
    """An object a step may change; ``namespace`` is None for cluster-scoped kinds."""

    kind: str
    namespace: str | None
    name: str
    # False for objects changed only as a consequence (pods a drain evicts): the opt-in label
    # is checked on the object the step is about only.
    check_labels: bool = True
    # False for such consequences too: kubectl drain evicts kube-system pods as well; the step
    # changes the Node (which is checked) and PodDisruptionBudgets still protect the workloads.
    check_protection: bool = True

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Bounds:
    """Numbers a step sets, checked against the policy's limits."""

    replicas: int | None = None
    resource_factor: float | None = None
    cordon_nodes: tuple[str, ...] = field(default_factory=tuple)


class PolicyViolation(PreconditionFailed):
    """A mutating step refused by the safety policy; ``record`` goes into the step result."""

    def __init__(self, rule: str, target: str, detail: str) -> None:
        super().__init__(f"policy rule {rule!r} refuses {target}: {detail}")
        self.rule, self.target, self.detail = rule, target, detail

    @property
    def record(self) -> dict[str, Any]:
        return {"rule": self.rule, "target": self.target, "detail": self.detail}


def parse_required_label(spec: str) -> tuple[str, str | None]:
    """'key=value' requires that value; a bare 'key' requires the label to be present."""
    key, sep, value = spec.partition("=")
    return key.strip(), (value.strip() if sep else None)


def _labels_of(ctx: ActionContext, target: Target) -> dict[str, str] | None:
    from kubernaut.kube.objects import CUSTOM_KINDS, KINDS, find_object

    if target.kind not in KINDS and target.kind not in CUSTOM_KINDS:
        raise PolicyViolation(
            RULE_REQUIRE_LABEL, str(target), f"cannot read the labels of kind {target.kind}"
        )
    obj = find_object(ctx.api_client, target.kind, target.namespace, target.name)
    if obj is None:
        return None
    labels: dict[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


def check_target(ctx: ActionContext, policy: PolicyConfig, target: Target) -> None:
    namespace = target.name if target.kind == "Namespace" else target.namespace
    if namespace and namespace in policy.protected_namespaces and target.check_protection:
        raise PolicyViolation(
            RULE_PROTECTED_NAMESPACE, str(target), f"namespace {namespace} is protected and never mutated"
        )
    if policy.require_label and target.check_labels:
        key, value = parse_required_label(policy.require_label)
        labels = _labels_of(ctx, target)
        if labels is None:
            return  # nothing to change: the action itself reports the object as not found
        if key not in labels or (value is not None and labels[key] != value):
            raise PolicyViolation(
                RULE_REQUIRE_LABEL,
                str(target),
                f"only objects labelled {policy.require_label} may be changed "
                f"(has {key}={labels.get(key, '<unset>')})",
            )


def unschedulable_nodes(ctx: ActionContext) -> set[str]:
    from kubernaut.kube.clients import core
    from kubernaut.kube.errors import api_errors

    with api_errors("nodes"):
        nodes = core(ctx).list_node().items
    return {n.metadata.name for n in nodes if n.spec and n.spec.unschedulable}


def check_bounds(ctx: ActionContext, policy: PolicyConfig, bounds: Bounds, what: str) -> None:
    if bounds.replicas is not None and bounds.replicas > policy.max_replicas:
        raise PolicyViolation(
            RULE_MAX_REPLICAS, what, f"{bounds.replicas} replicas exceed the limit of {policy.max_replicas}"
        )
    if bounds.resource_factor is not None and bounds.resource_factor > policy.max_resource_factor:
        raise PolicyViolation(
            RULE_MAX_RESOURCE_FACTOR,
            what,
            f"factor {bounds.resource_factor:g} exceeds the limit of {policy.max_resource_factor:g}",
        )
    if bounds.cordon_nodes:
        cordoned = unschedulable_nodes(ctx)
        after = cordoned | set(bounds.cordon_nodes)
        if len(after) > len(cordoned) and len(after) > policy.max_nodes_unschedulable:
            raise PolicyViolation(
                RULE_MAX_NODES_UNSCHEDULABLE,
                what,
                f"{len(after)} unschedulable nodes would exceed the limit of "
                f"{policy.max_nodes_unschedulable} (already cordoned: {sorted(cordoned) or 'none'})",
            )


def check_policy(ctx: ActionContext, action: Action[Any], params: ActionParams) -> None:
    """Raise PolicyViolation when the step would break a rule; called before ``precheck``."""
    policy = ctx.config.policy
    targets = action.targets(ctx, params)
    for target in targets:
        check_target(ctx, policy, target)
    what = ", ".join(str(t) for t in targets) or f"{action.kind}/{action.name}"
    check_bounds(ctx, policy, action.bounds(ctx, params), what)


__all__ = ["Bounds", "PolicyViolation", "Target", "check_policy", "parse_required_label"]
