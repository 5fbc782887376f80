"""tests/test_actions.py of your package: the action against the sandbox cluster.

Your top-level conftest.py enables the fixtures: pytest_plugins = ["kubernaut.testing.pytest_plugin"]
"""

from __future__ import annotations

from typing import Any

import pytest
from annotate_action import AnnotateDeployment  # in your package: acme_remediation.actions

from kubernaut.config import KubernautConfig, PolicyConfig
from kubernaut.kube.errors import NotFound
from kubernaut.policy import PolicyViolation
from kubernaut.testing import (
    KubeSandbox,
    UndoJournal,
    assert_action_contract,
    assert_resumes_without_double_change,
    assert_undo_idempotent,
    run_action,
)


def annotations(sandbox: KubeSandbox) -> dict[str, str]:
    deployment = sandbox.get("Deployment", "demo", "web")
    assert deployment is not None
    found = deployment["metadata"].get("annotations") or {}
    # the deployment controller writes its revision whenever it runs: not ours to compare
    return {k: v for k, v in found.items() if not k.startswith("deployment.kubernetes.io/")}


PARAMS = {"namespace": "demo", "deployment": "web", "key": "acme.example.com/incident", "value": "INC-1"}


def test_contract() -> None:
    assert_action_contract(AnnotateDeployment)  # kind, snake_case name, extra=forbid, docs


def test_run_then_undo_twice(kubernaut_sandbox: KubeSandbox) -> None:
    result = run_action(AnnotateDeployment, PARAMS)  # reaches the sandbox: kubernetes_default
    assert result.changed and result.undo == {"key": "acme.example.com/incident", "previous": None}
    assert annotations(kubernaut_sandbox)["acme.example.com/incident"] == "INC-1"
    first, second = assert_undo_idempotent(
        AnnotateDeployment, PARAMS, result, state=lambda: annotations(kubernaut_sandbox)
    )
    assert (first, second) == ({"restored": True}, {"restored": False})
    assert "acme.example.com/incident" not in annotations(kubernaut_sandbox)


def test_dry_run_changes_nothing(kubernaut_sandbox: KubeSandbox) -> None:
    def written() -> Any:
        # What the action would write; the sandbox's controllers keep updating the rest
        # (status, resourceVersion, the revision annotation) at any time, as a real cluster's do.
        return annotations(kubernaut_sandbox), kubernaut_sandbox.get("Deployment", "demo", "web")["spec"]

    journal = UndoJournal()
    before = written()
    result = run_action(
        AnnotateDeployment, PARAMS, ctx=kubernaut_sandbox.context(dry_run=True, journal=journal)
    )
    assert result.output["dry_run"] and not result.changed
    assert written() == before  # dryRun=All: nothing stored
    assert journal.records == []  # and nothing journaled


def test_retry_after_an_interruption_changes_nothing_twice(kubernaut_sandbox: KubeSandbox) -> None:
    def state() -> Any:
        # Only what the action writes: the cluster's controllers keep updating the rest (status,
        # the revision annotation), so resourceVersion would change without us.
        return annotations(kubernaut_sandbox).get("acme.example.com/incident")

    first, second = assert_resumes_without_double_change(AnnotateDeployment, PARAMS, state=state)
    assert second.output == {"unchanged": True} and second.undo == first.undo


def test_policy_applies_to_the_targets(kubernaut_sandbox: KubeSandbox) -> None:
    protected = KubernautConfig(policy=PolicyConfig(protected_namespaces=["demo"]))
    with pytest.raises(PolicyViolation, match="protected_namespace"):
        run_action(AnnotateDeployment, PARAMS, config=protected)
    opt_in = KubernautConfig(policy=PolicyConfig(require_label="kubernaut.io/managed=true"))
    with pytest.raises(PolicyViolation, match=r"require_label.*Deployment/demo/web"):
        run_action(AnnotateDeployment, PARAMS, config=opt_in, dry_run=True)  # refused in dry run too
    assert "acme.example.com/incident" not in annotations(kubernaut_sandbox)


def test_missing_deployment_is_a_clear_error(kubernaut_sandbox: KubeSandbox) -> None:
    with pytest.raises(NotFound, match="deployment demo/nope not found"):
        run_action(AnnotateDeployment, {**PARAMS, "deployment": "nope"})
