"""Alert content is data: it is inserted as text and never evaluated."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kubernaut.actions import Action, ActionContext, ActionParams, ActionRegistry, ActionResult
from kubernaut.alert import alert_context
from kubernaut.kube.names import ObjectName
from kubernaut.operators.runner import StepInputError, StepSpec, run_step
from kubernaut.rendering import RenderError, evaluate_condition, render_value

INJECTIONS = [
    "{{ 7*7 }}",
    "{% for x in range(3) %}x{% endfor %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{# comment #}",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_alert_values_come_through_literally(payload: str) -> None:
    alert = alert_context(
        {"alert": {"labels": {"alertname": "X", "pod": payload}, "annotations": {"d": payload}}}
    )
    out = render_value(
        {
            "pod": "{{ alert.resource }}",
            "text": "{{ alert.annotations.d }}!",
            "n": ["{{ alert.labels.pod }}"],
        },
        {"alert": alert},
    )
    assert out == {"pod": payload, "text": payload + "!", "n": [payload]}


def test_sandbox_blocks_unsafe_access_in_templates() -> None:
    with pytest.raises(RenderError, match="unsafe"):
        render_value("{{ alert.__class__.__mro__ }}", {"alert": alert_context({})})
    with pytest.raises(RenderError, match="undefined"):
        render_value("{{ nothing.here }}", {})


def test_alert_context_derives_target_from_kube_prometheus_labels() -> None:
    alert = alert_context(
        {
            "alert": {
                "labels": {
                    "alertname": "KubeDeploymentReplicasMismatch",
                    "namespace": "shop",
                    "deployment": "cart",
                    "severity": "warning",
                },
                "fingerprint": "abc",
            }
        }
    )
    assert (alert["name"], alert["namespace"], alert["kind"], alert["resource"]) == (
        "KubeDeploymentReplicasMismatch",
        "shop",
        "Deployment",
        "cart",
    )
    assert alert["severity"] == "warning" and alert["fingerprint"] == "abc"
    assert alert_context({"alert": "not a mapping"})["labels"] == {}


def test_conditions_are_sandboxed_expressions() -> None:
    ctx = {"steps": {"a": {"ready": False}}, "alert": alert_context({})}
    assert evaluate_condition("not steps['a'].ready", ctx) is True
    assert evaluate_condition("{{ steps['a'].ready }}", ctx) is False
    with pytest.raises(RenderError):
        evaluate_condition("steps.__class__", ctx)


class EchoParams(ActionParams):
    namespace: str
    pod: ObjectName


TEST_ACTIONS = ActionRegistry(builtin_modules=())


@TEST_ACTIONS.register
class Echo(Action[EchoParams]):
    kind = "custom"
    name = "echo"
    Params = EchoParams
    calls: list[EchoParams] = []

    def run(self, ctx: ActionContext, params: EchoParams) -> ActionResult:
        Echo.calls.append(params)
        return ActionResult(output={"pod": params.pod, "dry_run": ctx.dry_run})


def _run(alert: dict[str, Any], **spec: Any) -> Any:
    step = StepSpec(
        template="t",
        name="s",
        action_type="custom",
        action_name="echo",
        parameters={"namespace": "{{ alert.namespace }}", "pod": "{{ alert.resource }}"},
        **spec,
    )
    return run_step(
        step,
        conf={"alert": alert},
        params={},
        steps={},
        timeout=5,
        logger=logging.getLogger("t"),
        actions=TEST_ACTIONS,
    )


def test_injected_name_is_refused_before_the_action_runs() -> None:
    Echo.calls.clear()
    with pytest.raises(StepInputError, match=r"parameters.pod: Value error, '\{\{ 7\*7 \}\}' is not a valid"):
        _run({"labels": {"namespace": "demo", "pod": "{{ 7*7 }}"}})
    assert Echo.calls == []


def test_false_condition_skips_with_reason_and_true_runs() -> None:
    alert = {"labels": {"namespace": "demo", "pod": "web-1", "severity": "info"}}
    outcome = _run(alert, conditions=["alert.severity == 'critical'"])
    assert outcome.skipped and "alert.severity == 'critical'" in outcome.reason
    outcome = _run(alert, conditions=["alert.severity == 'info'"], dry_run=True)
    assert not outcome.skipped
    assert outcome.record["output"] == {"pod": "web-1", "dry_run": True}
    assert outcome.record["parameters"] == {"namespace": "demo", "pod": "web-1"}
