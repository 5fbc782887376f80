"""Each kind of template mistake is reported with file, line, field path and a clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import model_validator

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult
from kubernaut.actions.registry import ActionRegistry
from kubernaut.templates import load_template

from .conftest import SEED, WriteTemplate
from .helpers import expect, load_errors, only_error

HEADER = """\
name: t
alert_types: [A]
steps:
"""


def test_seed_example_is_valid(write: WriteTemplate, registry: ActionRegistry) -> None:
    template = load_template(write(SEED), registry=registry)
    assert [s.name for s in template.steps] == ["assess-pod-state", "restart-pod", "validate-recovery"]


def test_yaml_syntax_error_has_parser_line(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(HEADER + "  - name: a\n    action: {type: custom, action: x\n  - name: b\n")
    error = only_error(path, registry)
    assert (error.line, error.column, error.path) == (6, 9, "")
    assert error.message.startswith("invalid YAML: did not find expected ',' or '}'")
    assert "(while parsing a flow mapping started at line 5)" in error.message
    assert str(error).startswith(f"{path}:{error.line}:{error.column}: invalid YAML")


def test_python_tags_are_rejected(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write("name: !!python/object/apply:os.system ['true']\nalert_types: [A]\n")
    error = only_error(path, registry)
    assert error.line == 1 and "invalid YAML" in error.message and "python/object" in error.message


def test_not_a_mapping(write: WriteTemplate, registry: ActionRegistry) -> None:
    expect(
        only_error(write("- a\n- b\n"), registry), write("- a\n- b\n"), 1, "", "expected a mapping", "list"
    )
    empty = write("", name="empty.yaml")
    assert "empty file" in only_error(empty, registry).message


def test_missing_required_field(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        """\
        name: t
        steps:
          - name: a
            action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
        """
    )
    expect(only_error(path, registry), path, 1, "", "missing required field 'alert_types'")


def test_missing_field_inside_step_points_at_the_step(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(HEADER + "  - name: a\n    description: no action here\n")
    expect(only_error(path, registry), path, 4, "steps[0]", "missing required field 'action'")


def test_unknown_field_suggests_the_right_one(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
    dependson: []
"""
    )
    error = only_error(path, registry)
    expect(error, path, 6, "steps[0].dependson", "unknown field 'dependson'", "did you mean 'depends_on'?")
    assert error.column == 5


def test_wrong_type(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
    retries: many
"""
    )
    expect(only_error(path, registry), path, 6, "steps[0].retries", "expected a valid integer", "'many'")


def test_bad_step_name(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(HEADER + "  - name: Restart_Pod\n    action: {type: custom, action: x}\n")
    errors = load_errors(path, registry)
    expect(errors[0], path, 4, "steps[0].name", "DNS-1123", "'Restart_Pod'")


def test_unknown_action_type(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(HEADER + "  - name: a\n    action:\n      type: kubernets\n      action: get_pod_status\n")
    expect(
        only_error(path, registry),
        path,
        6,
        "steps[0].action.type",
        "unknown action type 'kubernets'",
        "did you mean 'kubernetes'?",
    )


def test_unknown_action_name_with_suggestion(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action:
      type: kubernetes
      action: restrat_pod
      parameters: {namespace: n, pod: p}
"""
    )
    error = only_error(path, registry)
    expect(
        error,
        path,
        7,
        "steps[0].action.action",
        "unknown kubernetes action 'restrat_pod'",
        "did you mean 'restart_pod'?",
    )
    assert str(error).startswith(f"{path}:7:15: steps[0].action.action: unknown kubernetes action")


def test_unknown_action_parameter(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action:
      type: kubernetes
      action: get_pod_status
      parameters:
        namespace: n
        pods: p
"""
    )
    errors = load_errors(path, registry)
    expect(errors[0], path, 8, "steps[0].action.parameters", "missing required parameter 'pod'")
    expect(
        errors[1],
        path,
        10,
        "steps[0].action.parameters.pods",
        "unknown parameter 'pods'",
        "did you mean 'pod'?",
    )


def test_misspelt_parameter_with_a_jinja_value_beside_the_right_one(
    write: WriteTemplate, registry: ActionRegistry
) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action:
      type: kubernetes
      action: scale_deployment
      parameters:
        namespace: n
        deployment: d
        replicas: 2
        replcas: "{{ params.n }}"
parameters:
  n: {type: integer, default: 2}
"""
    )
    error = only_error(path, registry)
    expect(error, path, 12, "steps[0].action.parameters.replcas")
    assert error.column == 9  # the key that is wrong
    assert (
        error.message
        == "unknown parameter 'replcas' of kubernetes/scale_deployment; did you mean 'replicas'?"
    )


def test_renamed_parameter_with_a_jinja_value_reports_both_problems(
    write: WriteTemplate, registry: ActionRegistry
) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action:
      type: kubernetes
      action: scale_deployment
      parameters:
        namespace: n
        deployment: d
        replcas: "{{ params.n }}"
parameters:
  n: {type: integer, default: 2}
"""
    )
    missing, unknown = load_errors(path, registry)
    expect(missing, path, 8, "steps[0].action.parameters", "missing required parameter 'replicas'")
    expect(unknown, path, 11, "steps[0].action.parameters.replcas", "did you mean 'replicas'?")
    assert (unknown.column, missing.column) == (9, 7)


def test_unknown_parameter_is_reported_when_a_model_rule_fails_on_jinja(
    write: WriteTemplate, registry: ActionRegistry
) -> None:
    """Pydantic reports no unknown field when a `before` model validator fails first: the
    name check must not depend on it."""

    class StrictParams(ActionParams):
        low: int
        high: int

        @model_validator(mode="before")
        @classmethod
        def _ordered(cls, data: Any) -> Any:
            if int(data["low"]) > int(data["high"]):  # fails on an unrendered "{{ ... }}"
                raise ValueError("low must not exceed high")
            return data

    class Ranged(Action[StrictParams]):
        kind = "custom"
        name = "ranged"
        Params = StrictParams

        def run(self, ctx: ActionContext, params: StrictParams) -> ActionResult:
            return ActionResult()

    registry.register(Ranged)
    path = write(
        HEADER
        + '  - name: a\n    action: {type: custom, action: ranged, parameters: {low: "{{ params.n }}", '
        "high: 3, hihg: 4}}\nparameters:\n  n: {type: integer, default: 1}\n"
    )
    error = only_error(path, registry)
    expect(error, path, 5, "steps[0].action.parameters.hihg", "unknown parameter 'hihg' of custom/ranged")
    assert error.column == 89


def test_inherited_rollback_parameters_are_checked_even_when_templated(
    write: WriteTemplate, registry: ActionRegistry
) -> None:
    # rollback_pod_restart would get the step's wait_timeout at run time and refuse it.
    path = write(
        HEADER
        + """\
  - name: a
    action: {type: monitoring, action: validate_pod_health,
             parameters: {namespace: n, pod: p, wait_timeout: "{{ params.w }}"}}
    rollback: {type: kubernetes, action: rollback_pod_restart}
parameters:
  w: {type: duration, default: 1m}
"""
    )
    expect(
        only_error(path, registry),
        path,
        7,
        "steps[0].rollback",
        "unknown parameter 'wait_timeout' of rollback action kubernetes/rollback_pod_restart",
        "inherited from the step's parameters",
    )


def test_misspelt_jinja_parameter_of_a_builtin_action(write: WriteTemplate) -> None:
    """The same against the real registry (the built-in taint_node has `key` and `value`)."""
    from kubernaut.actions.registry import registry as builtin

    path = write(
        HEADER
        + """\
  - name: taint
    action:
      type: kubernetes
      action: taint_node
      parameters:
        node: "{{ alert.resource }}"
        key: kubernaut.io/remediation
        value: "{{ alert.name }}"
        vaule: "{{ alert.labels.reason }}"
"""
    )
    error = only_error(path, builtin)
    assert str(error) == (
        f"{path}:12:9: steps[0].action.parameters.vaule: "
        "unknown parameter 'vaule' of kubernetes/taint_node; did you mean 'value'?"
    )
    # `value` is optional (default ''): renaming it leaves only the unknown name to report.
    renamed = write(path.read_text().replace('        value: "{{ alert.name }}"\n', ""), name="r.yaml")
    assert [(e.line, e.column, e.path) for e in load_errors(renamed, builtin)] == [
        (11, 9, "steps[0].action.parameters.vaule")
    ]


def test_missing_required_action_parameter(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action:
      type: kubernetes
      action: get_pod_status
      parameters: {pod: "{{ alert.resource }}"}
"""
    )
    expect(
        only_error(path, registry),
        path,
        8,
        "steps[0].action.parameters",
        "missing required parameter 'namespace'",
        "get_pod_status",
    )


def test_wrong_type_of_literal_parameter_but_templated_values_pass(
    write: WriteTemplate, registry: ActionRegistry
) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action:
      type: kubernetes
      action: scale_deployment
      parameters: {namespace: n, deployment: d, replicas: lots}
  - name: b
    action:
      type: kubernetes
      action: scale_deployment
      parameters: {namespace: n, deployment: d, replicas: "{{ params.n }}"}
parameters:
  n: {type: integer, default: 2}
"""
    )
    expect(
        only_error(path, registry),
        path,
        8,
        "steps[0].action.parameters.replicas",
        "expected a valid integer",
        "'lots'",
    )


def test_unknown_rollback_action(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action: {type: kubernetes, action: restart_pod, parameters: {namespace: n, pod: p}}
    rollback:
      action: rollback_pod_restrat
"""
    )
    expect(
        only_error(path, registry),
        path,
        7,
        "steps[0].rollback.action",
        "unknown kubernetes action 'rollback_pod_restrat'",
        "did you mean 'rollback_pod_restart'?",
    )


def test_rollback_parameters_are_checked(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action: {type: kubernetes, action: restart_pod, parameters: {namespace: n, pod: p}}
    rollback: {type: kubernetes, action: scale_deployment, parameters: {namespace: n, deployment: d}}
"""
    )
    expect(
        only_error(path, registry),
        path,
        6,
        "steps[0].rollback.parameters",
        "missing required parameter 'replicas'",
        "rollback",
    )


def test_duplicate_step_names(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
  - name: a
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
"""
    )
    expect(only_error(path, registry), path, 6, "steps[1].name", "duplicate step name 'a'")


def test_depends_on_missing_step(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: assess
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
  - name: restart
    action: {type: kubernetes, action: restart_pod, parameters: {namespace: n, pod: p}}
    depends_on: [asess]
"""
    )
    expect(
        only_error(path, registry),
        path,
        8,
        "steps[1].depends_on[0]",
        "unknown step 'asess'",
        "did you mean 'assess'?",
    )


def test_dependency_cycle_is_named(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
    depends_on: [c]
  - name: b
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
    depends_on: [a]
  - name: c
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
"""
    )
    expect(only_error(path, registry), path, 6, "steps[0].depends_on", "dependency cycle: a -> c -> b -> a")


def test_parallel_with_depends_on_is_rejected(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
  - name: b
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
    depends_on: [a]
    parallel: true
"""
    )
    expect(only_error(path, registry), path, 9, "steps[1].parallel", "cannot be combined with `depends_on`")


def test_bad_duration(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER.replace("steps:\n", "configuration:\n  timeout: 5 minutes\nsteps:\n")
        + "  - name: a\n    action: {type: kubernetes, action: get_pod_status,"
        " parameters: {namespace: n, pod: p}}\n"
    )
    expect(
        only_error(path, registry),
        path,
        4,
        "configuration.timeout",
        "expected a duration like '30s'",
        "'5 minutes'",
    )


def test_jinja_syntax_error_in_parameter(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action:
      type: kubernetes
      action: get_pod_status
      parameters:
        namespace: "{{ alert.namespace }"
        pod: p
"""
    )
    expect(only_error(path, registry), path, 9, "steps[0].action.parameters.namespace", "Jinja syntax error")


def test_jinja_syntax_error_line_inside_block_scalar(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action:
      type: kubernetes
      action: get_pod_status
      parameters:
        pod: p
        namespace: |
          {% if alert.namespace %}
          {{ alert.namespace }
          {% endif %}
"""
    )
    expect(only_error(path, registry), path, 12, "steps[0].action.parameters.namespace", "Jinja syntax error")


def test_jinja_syntax_error_in_condition(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
    conditions:
      - alert.severity == 'critical'
      - alert.severity ==
"""
    )
    expect(only_error(path, registry), path, 8, "steps[0].conditions[1]", "Jinja syntax error in condition")


def test_unknown_top_level_name(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action:
      type: kubernetes
      action: get_pod_status
      parameters: {namespace: "{{ alrt.namespace }}", pod: p}
"""
    )
    expect(
        only_error(path, registry),
        path,
        8,
        "steps[0].action.parameters.namespace",
        "unknown name 'alrt'",
        "did you mean 'alert'?",
    )


def test_loop_variables_and_jinja_globals_are_not_unknown_names(
    write: WriteTemplate, registry: ActionRegistry
) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action:
      type: kubernetes
      action: get_pod_status
      parameters:
        namespace: "{% for k in alert.labels %}{{ k }}{% endfor %}{% set x = 1 %}{{ x }}"
        pod: "{{ range(3) | list | length }}"
"""
    )
    load_template(path, registry=registry)


def test_unknown_template_parameter(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        """\
name: t
alert_types: [A]
parameters:
  max_restarts: {type: integer, default: 3}
steps:
  - name: a
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
    conditions: "params.max_restart > 1"
"""
    )
    expect(
        only_error(path, registry),
        path,
        8,
        "steps[0].conditions",
        "unknown template parameter 'params.max_restart'",
        "did you mean 'max_restarts'?",
    )


def test_step_reference_must_be_upstream(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
  - name: b
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
    depends_on: []
    conditions: ["steps['a'].phase != 'Running'"]
  - name: c
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
    conditions: ["steps['a'].phase != 'Running'", "steps['zz'].ok", "steps.c.ok"]
"""
    )
    errors = load_errors(path, registry)
    expect(errors[0], path, 9, "steps[1].conditions[0]", "step 'a' is not upstream of 'b'", "depends_on")
    # c follows b (sequential default) and b is a root, so a is not upstream of c either.
    expect(errors[1], path, 12, "steps[2].conditions[0]", "step 'a' is not upstream of 'c'")
    expect(errors[2], path, 12, "steps[2].conditions[1]", "unknown step 'zz'")
    expect(errors[3], path, 12, "steps[2].conditions[2]", "step 'c' cannot use its own result")
    assert len(errors) == 4


def test_transitive_upstream_reference_is_allowed(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
  - name: b
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
  - name: c
    action: {type: kubernetes, action: get_pod_status,
             parameters: {namespace: n, pod: "{{ steps['a'].pod }}"}}
    conditions: "{{ steps['a'].phase != 'Running' and steps.b.ready }}"
"""
    )
    assert load_template(path, registry=registry).step("c").conditions == [
        "{{ steps['a'].phase != 'Running' and steps.b.ready }}"
    ]


def test_bad_matcher(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        """\
name: t
alert_types:
  - PodCrashLoop
  - alertname: PodFailed
    matchers: ['namespace=~"(kube-"']
matchers: ['severity=="critical"']
steps:
  - name: a
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
"""
    )
    errors = load_errors(path, registry)
    expect(errors[0], path, 5, "alert_types[1].matchers[0]", "invalid regular expression")
    expect(errors[1], path, 6, "matchers[0]", "invalid matcher", "expected label<op>")


def test_duplicate_keys_are_rejected(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        HEADER
        + """\
  - name: a
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
    retries: 1
    retries: 2
"""
    )
    error = only_error(path, registry)
    expect(error, path, 7, "steps[0].retries", "duplicate key 'retries'", "first defined at line 6")


def test_all_errors_of_a_file_are_collected(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        """\
name: t
alert_types: [A]
configuration: {retries: -1}
steps:
  - name: a
    action: {type: kubernetes, action: restrat_pod, parameters: {namespace: n, pod: p}}
  - name: b
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
    timeot: 5m
  - name: c
    action: {type: monitoring, action: validate_pod_health, parameters: {namespace: "{{ x }}", pod: p}}
    depends_on: [d]
"""
    )
    errors = load_errors(path, registry)
    assert [(e.line, e.path) for e in errors] == [
        (3, "configuration.retries"),
        (6, "steps[0].action.action"),
        (9, "steps[1].timeot"),
        (11, "steps[2].action.parameters.namespace"),
        (12, "steps[2].depends_on[0]"),
    ]


def test_parameter_declarations_are_checked(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        """\
name: t
alert_types: [A]
parameters:
  a: {type: integer, default: three}
  b: {type: text}
  c: {type: string, default: x, required: true}
steps:
  - name: s
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
"""
    )
    errors = load_errors(path, registry)
    expect(errors[0], path, 4, "parameters.a.default", "expected a value of type integer", "'three'")
    assert errors[0].column == 31  # the value `three`, not the mapping that holds it
    expect(errors[1], path, 5, "parameters.b.type", "expected 'string', 'integer'")
    expect(errors[2], path, 6, "parameters.c", "cannot be required")


def test_bad_parameter_default_points_at_the_value(write: WriteTemplate, registry: ActionRegistry) -> None:
    path = write(
        """\
name: t
alert_types: [A]
parameters:
  replicas:
    type: integer
    description: how many
    default: lots
  wait:
    type: duration
    default: [1, 2]
  ok: {type: duration, default: 5m}
steps:
  - name: s
    action: {type: kubernetes, action: get_pod_status, parameters: {namespace: n, pod: p}}
"""
    )
    replicas, wait = load_errors(path, registry)
    expect(replicas, path, 7, "parameters.replicas.default", "expected a value of type integer, got 'lots'")
    assert replicas.column == 14
    expect(wait, path, 10, "parameters.wait.default", "expected a duration", "[1, 2]")
    assert wait.column == 14
    assert str(replicas).startswith(f"{path}:7:14: parameters.replicas.default: ")


def test_unreadable_file(tmp_path: Path, registry: ActionRegistry) -> None:
    error = only_error(tmp_path / "missing.yaml", registry)
    assert error.file == str(tmp_path / "missing.yaml") and "cannot read file" in error.message


def test_recursive_and_exponential_aliases_load_quickly(
    write: WriteTemplate, registry: ActionRegistry
) -> None:
    laughs = "\n".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 12))
    path = write(f"name: t\nalert_types: [A]\nl0: &l0 [lol]\n{laughs}\nx: &x [*x]\n")
    errors = load_errors(path, registry)
    assert [e.path for e in errors][:2] == ["", "l0"]
    assert "missing required field 'steps'" in errors[0].message


def test_a_template_may_not_take_the_assessment_dags_name(
    write: WriteTemplate, registry: ActionRegistry
) -> None:
    path = write(SEED.replace("name: pod-crash-recovery", "name: assessment", 1))
    expect(only_error(path, registry), path, 1, "name", "'assessment' is reserved", "kubernaut_assessment")
