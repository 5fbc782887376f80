"""The layers below the actions raise their own errors; the action contract turns them into
ActionErrors in one place (``kubernaut.actions.base.translated``), keeping the message, the name
the history records, the cause and the original class."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionError,
    ActionResult,
    NoParams,
    VerificationFailed,
    default_kube_client,
)
from kubernaut.kube import errors as kube_errors
from kubernaut.kube.clients import core
from kubernaut.kube.diagnostics import object_events
from kubernaut.kube.objects import read_object
from kubernaut.kube.waiting import wait_for
from kubernaut.sandbox import SandboxCluster
from tests.actions.k8s_helpers import run


def test_a_kube_helper_raises_its_own_error_given_a_plain_api_client(cluster: SandboxCluster) -> None:
    api = default_kube_client("kubernetes_default")  # no step context: as a trigger or a CLI
    assert "demo" in {ns.metadata.name for ns in core(api).list_namespace().items}
    assert object_events(api, "Deployment", "demo", "missing", 5) == ([], 0)
    with pytest.raises(kube_errors.NotFound) as info:
        read_object(api, "Deployment", "demo", "missing")
    assert not isinstance(info.value, ActionError)
    assert str(info.value) == "deployment demo/missing not found"
    assert isinstance(info.value.__cause__, ApiException) and info.value.__cause__.status == 404


def test_an_action_reports_it_as_an_action_error_of_the_same_name(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    with pytest.raises(ActionError) as info:
        run(ctx, "get_deployment_status", namespace="demo", deployment="missing")
    error = info.value
    assert type(error).__name__ == "NotFound" and isinstance(error, kube_errors.NotFound)
    assert str(error) == "deployment demo/missing not found"
    assert isinstance(error.__cause__, ApiException) and error.__cause__.status == 404


class _NeverTrue(Action[NoParams]):
    """Confirms a state that never comes: the blocking wait's NotReady, seen from the action."""

    kind = "custom"
    name = "never_true_for_test"

    def run(self, ctx: ActionContext, params: NoParams) -> ActionResult:
        seen: list[int] = []

        def check() -> tuple[bool, int]:
            seen.append(1)
            return False, len(seen)

        wait_for(ctx, check, what="the impossible", timeout=0.3)
        return ActionResult()


def test_a_confirmation_that_never_comes_fails_the_step_as_before() -> None:
    ctx = ActionContext(timeout=5, poll_interval=0.05)
    with pytest.raises(VerificationFailed) as info:
        _NeverTrue().execute(ctx, NoParams())
    assert type(info.value) is VerificationFailed
    assert str(info.value).startswith("the impossible not reached within 0s; last seen: ")
    assert int(str(info.value).rsplit(" ", 1)[1]) >= 2  # it polled again until the deadline
    # Below the actions, the same wait raises the kube layer's own error.
    with pytest.raises(kube_errors.NotReady) as below:
        wait_for(ctx, lambda: (False, "x"), what="w", timeout=0.1)
    assert not isinstance(below.value, ActionError)


def test_errors_raised_as_action_errors_pass_unchanged() -> None:
    class Refuses(Action[NoParams]):
        kind = "custom"
        name = "refuses_for_test"

        def run(self, ctx: ActionContext, params: NoParams) -> Any:
            raise ActionError("no")

    with pytest.raises(ActionError) as info:
        Refuses().run(ActionContext(), NoParams())
    assert type(info.value) is ActionError and str(info.value) == "no"
