"""The safety policy's rules over plain data: no cluster, no action contract."""

from __future__ import annotations

import pytest

from kubernaut.actions.base import ActionError
from kubernaut.config import PolicyConfig
from kubernaut.policy import (
    Bounds,
    PolicyViolation,
    check_cordons,
    check_labels,
    check_numbers,
    check_protection,
    needs_labels,
)
from kubernaut.target import Target


def test_protected_namespace_and_its_exceptions() -> None:
    policy = PolicyConfig()
    with pytest.raises(PolicyViolation) as info:
        check_protection(policy, Target("Deployment", "kube-system", "coredns"))
    assert info.value.record == {
        "rule": "protected_namespace",
        "target": "Deployment/kube-system/coredns",
        "detail": "namespace kube-system is protected and never mutated",
    }
    assert not isinstance(info.value, ActionError)  # the actions layer makes it a PreconditionFailed
    with pytest.raises(PolicyViolation):
        check_protection(policy, Target("Namespace", None, "kube-system"))
    check_protection(policy, Target("Pod", "kube-system", "evicted", check_protection=False))
    check_protection(policy, Target("Deployment", "demo", "web"))


def test_required_label_is_checked_on_the_labels_given() -> None:
    policy = PolicyConfig(require_label="team=a")
    web = Target("Deployment", "demo", "web")
    assert needs_labels(policy, web) and not needs_labels(PolicyConfig(), web)
    assert not needs_labels(policy, Target("Pod", "demo", "p", check_labels=False))
    check_labels(policy, web, {"team": "a"})
    check_labels(policy, web, None)  # not found: the action reports that itself
    with pytest.raises(PolicyViolation, match=r"only objects labelled team=a may be changed \(has team=b\)"):
        check_labels(policy, web, {"team": "b"})
    with pytest.raises(PolicyViolation, match=r"\(has team=<unset>\)"):
        check_labels(policy, web, {})
    with pytest.raises(PolicyViolation, match="cannot read the labels of kind Widget"):
        check_labels(policy, Target("Widget", "demo", "w"), None, readable=False)


def test_numbers_and_cordons() -> None:
    policy = PolicyConfig(max_replicas=5, max_resource_factor=2.0, max_nodes_unschedulable=1)
    check_numbers(policy, Bounds(replicas=5, resource_factor=2.0), "x")
    with pytest.raises(PolicyViolation, match="6 replicas exceed the limit of 5"):
        check_numbers(policy, Bounds(replicas=6), "x")
    with pytest.raises(PolicyViolation, match="factor 3 exceeds the limit of 2"):
        check_numbers(policy, Bounds(resource_factor=3.0), "x")
    check_cordons(policy, Bounds(cordon_nodes=("n1",)), "Node/n1", set())
    check_cordons(policy, Bounds(cordon_nodes=("n1",)), "Node/n1", {"n1"})  # already cordoned
    with pytest.raises(PolicyViolation, match=r"2 unschedulable nodes .* \(already cordoned: \['n1'\]\)"):
        check_cordons(policy, Bounds(cordon_nodes=("n2",)), "Node/n2", {"n1"})


def test_one_target_type_for_alerts_and_changes() -> None:
    from kubernaut.alert import Target as AlertTarget
    from kubernaut.alert import derive_target
    from kubernaut.policy import Target as PolicyTarget

    assert AlertTarget is PolicyTarget is Target
    node = derive_target({"alertname": "KubeNodeNotReady", "node": "w1"})
    assert node == Target("Node", None, "w1") and node.as_dict() == {
        "kind": "Node",
        "namespace": "",
        "name": "w1",
    }
    assert str(Target("Deployment", "demo", "web", cluster="eu")) == "Deployment/demo/web"
