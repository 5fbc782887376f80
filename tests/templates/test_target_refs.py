"""A template's ``target:`` (for alerts whose labels name no object) is rendered by the intake
with ``alert`` and ``params`` before any step runs: a typo there fails at load time, naming file,
line and field, instead of deciding every matching alert ``no_target``."""

from __future__ import annotations

from kubernaut.actions.registry import ActionRegistry
from kubernaut.templates import load_template

from .conftest import WriteTemplate
from .helpers import expect, load_errors, only_error

TEMPLATE = """\
name: t
alert_types: [KubeCPUOvercommit]
parameters:
  machine_deployment: {{type: string, default: workers}}
target: {{kind: MachineDeployment, namespace: default, name: "{name}"}}
steps:
  - name: s
    action: {{type: kubernetes, action: get_pod_status, parameters: {{namespace: default, pod: p}}}}
"""


def test_a_valid_target_loads(write: WriteTemplate, registry: ActionRegistry) -> None:
    template = load_template(
        write(TEMPLATE.format(name="{{ params.machine_deployment }}-{{ alert.labels.cluster }}")),
        registry=registry,
    )
    assert template.target is not None and template.target.kind == "MachineDeployment"


def test_an_unknown_parameter_in_the_target_names_line_field_and_suggestion(
    write: WriteTemplate, registry: ActionRegistry
) -> None:
    path = write(TEMPLATE.format(name="{{ params.machine_deploymnt }}"))
    expect(
        only_error(path, registry),
        path,
        5,
        "target.name",
        "unknown template parameter 'params.machine_deploymnt'",
        "did you mean 'machine_deployment'",
    )


def test_step_results_and_unknown_names_are_not_available_to_the_target(
    write: WriteTemplate, registry: ActionRegistry
) -> None:
    path = write(TEMPLATE.format(name="{{ steps['s'].output.name }}{{ labels.node }}"))
    messages = [e.message for e in load_errors(path, registry)]
    assert any("'steps'" in m and "step results do not exist yet" in m for m in messages), messages
    assert any("unknown name 'labels'" in m for m in messages), messages
