"""The safety policy: rules over plain data, consulted before every mutating step (dry-run too).

What a step changes is data: the objects (``Target``: kind, namespace, name), the numbers it
sets (``Bounds``), and what the cluster says about them (an object's labels, the nodes already
cordoned). The rules compare that data with ``PolicyConfig`` and raise ``PolicyViolation``
naming the rule and the object. Nothing here reads the cluster or knows the action contract:
the actions layer (``kubernaut.actions.base.check_policy``) gathers the data and consults the
rules, in the order below, reading only what the next rule needs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubernaut.errors import KubernautError
from kubernaut.target import Target

if TYPE_CHECKING:
    from kubernaut.config import PolicyConfig

RULE_PROTECTED_NAMESPACE = "protected_namespace"
RULE_REQUIRE_LABEL = "require_label"
RULE_MAX_REPLICAS = "max_replicas"
RULE_MAX_RESOURCE_FACTOR = "max_resource_factor"
RULE_MAX_NODES_UNSCHEDULABLE = "max_nodes_unschedulable"


@dataclass(frozen=True)
class Bounds:
    """Numbers a step sets, checked against the policy's limits."""

    replicas: int | None = None
    resource_factor: float | None = None
    cordon_nodes: tuple[str, ...] = field(default_factory=tuple)


class PolicyViolation(KubernautError):
    """A change the safety policy refuses; ``record`` goes into the step result. A step refused
    this way raises it as a ``PreconditionFailed`` too (nothing has changed yet)."""

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


def check_protection(policy: PolicyConfig, target: Target) -> None:
    """Rule ``protected_namespace``: nothing in (or being) a protected namespace changes."""
    namespace = target.name if target.kind == "Namespace" else target.namespace
    if namespace and namespace in policy.protected_namespaces and target.check_protection:
        raise PolicyViolation(
            RULE_PROTECTED_NAMESPACE, str(target), f"namespace {namespace} is protected and never mutated"
        )


def needs_labels(policy: PolicyConfig, target: Target) -> bool:
    """Whether ``check_labels`` needs the target's labels (only then are they read)."""
    return bool(policy.require_label) and target.check_labels


def check_labels(
    policy: PolicyConfig, target: Target, labels: Mapping[str, str] | None, *, readable: bool = True
) -> None:
    """Rule ``require_label``: only objects carrying the opt-in label change. ``labels`` None:
    the object does not exist (nothing to change; the action reports it). ``readable`` False:
    labels of that kind cannot be read, so the rule cannot be satisfied."""
    if not needs_labels(policy, target):
        return
    if not readable:
        raise PolicyViolation(
            RULE_REQUIRE_LABEL, str(target), f"cannot read the labels of kind {target.kind}"
        )
    if labels is None:
        return
    key, value = parse_required_label(policy.require_label or "")
    if key not in labels or (value is not None and labels[key] != value):
        raise PolicyViolation(
            RULE_REQUIRE_LABEL,
            str(target),
            f"only objects labelled {policy.require_label} may be changed "
            f"(has {key}={labels.get(key, '<unset>')})",
        )


def check_numbers(policy: PolicyConfig, bounds: Bounds, what: str) -> None:
    """Rules ``max_replicas`` and ``max_resource_factor``."""
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


def check_cordons(policy: PolicyConfig, bounds: Bounds, what: str, cordoned: Collection[str]) -> None:
    """Rule ``max_nodes_unschedulable``, given the nodes unschedulable now (read only when the
    step cordons some: ``bounds.cordon_nodes``)."""
    if not bounds.cordon_nodes:
        return
    before = set(cordoned)
    after = before | set(bounds.cordon_nodes)
    if len(after) > len(before) and len(after) > policy.max_nodes_unschedulable:
        raise PolicyViolation(
            RULE_MAX_NODES_UNSCHEDULABLE,
            what,
            f"{len(after)} unschedulable nodes would exceed the limit of "
            f"{policy.max_nodes_unschedulable} (already cordoned: {sorted(before) or 'none'})",
        )


def describe_change(targets: list[Target], fallback: str) -> str:
    """How a refusal of the bounds names the change: its targets, else the action."""
    return ", ".join(str(t) for t in targets) or fallback


__all__ = [
    "Bounds",
    "PolicyViolation",
    "Target",
    "check_cordons",
    "check_labels",
    "check_numbers",
    "check_protection",
    "describe_change",
    "needs_labels",
    "parse_required_label",
]
