"""Valid templates: dependencies, step settings, rollback resolution, parameters, loading a directory."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from kubernaut.actions.registry import ActionRegistry
from kubernaut.templates import ParameterError, Template, load_template, load_templates

from .conftest import SEED, WriteTemplate

FULL = """\
name: full-example
description: every field
alert_types:
  - PodCrashLoop
  - alertname: KubePodCrashLooping
    matchers: ['namespace=~"prod-.*"']
matchers: ['severity=~"warning|critical"', 'namespace!="kube-system"']
tags: [pods]
parameters:
  max_restarts: {type: integer, default: 3, description: how many}
  wait: {type: duration, default: 2m}
  target: {type: string, required: true}
  ratio: {type: number, default: 0.5}
  enabled: {type: boolean, default: true}
  names: {type: list, default: []}
  extra: {type: object, default: {}}
configuration:
  dry_run: true
  max_active_runs: 2
  timeout: 10m
  retries: 1
  retry_delay: 30s
  cooldown: 15m
steps:
  - name: assess
    action: {type: kubernetes, action: get_pod_status,
             parameters: {namespace: "{{ alert.namespace }}", pod: "{{ params.target }}"}}
  - name: restart
    action: {type: kubernetes, action: restart_pod, parameters: {namespace: n, pod: p}}
    conditions: "steps.assess.phase != 'Running'"
    timeout: 5m
    retries: 3
    retry_exponential_backoff: true
    approval: required
  - name: scale
    action: {type: kubernetes, action: scale_deployment,
             parameters: {namespace: n, deployment: d, replicas: 2}}
    parallel: true
    rollback: none
  - name: check
    action: {type: monitoring, action: validate_pod_health, parameters: {namespace: n, pod: p}}
    rollback: {type: kubernetes, action: rollback_pod_restart}
  - name: report
    action: {type: monitoring, action: validate_pod_health,
             parameters: {namespace: n, pod: p, wait_timeout: "{{ params.wait }}"}}
    depends_on: []
"""


@pytest.fixture
def full(write: WriteTemplate, registry: ActionRegistry) -> Template:
    return load_template(write(FULL), registry=registry)


def test_full_template_loads(full: Template, tmp_path: Path) -> None:
    assert full.dag_id == "kubernaut_full_example"
    assert full.source == tmp_path / "t.yaml"
    assert full.tags == ["pods"]
    assert full.configuration.dry_run is True
    assert full.configuration.max_active_runs == 2
    assert full.configuration.kubernetes_conn_id == "kubernetes_default"
    assert full.step("restart").approval == "required"
    with pytest.raises(KeyError):
        full.step("nope")


def test_effective_dependencies(full: Template) -> None:
    # restart follows assess; scale runs beside restart; check waits for both; report is a root.
    assert full.effective_dependencies() == {
        "assess": [],
        "restart": ["assess"],
        "scale": ["assess"],
        "check": ["restart", "scale"],
        "report": [],
    }
    assert list(full.effective_dependencies()) == [s.name for s in full.steps]


def test_seed_dependencies(write: WriteTemplate, registry: ActionRegistry) -> None:
    seed = load_template(write(SEED), registry=registry)
    assert seed.effective_dependencies() == {
        "assess-pod-state": [],
        "restart-pod": ["assess-pod-state"],
        "validate-recovery": ["restart-pod"],
    }


def test_step_settings_fall_back_to_configuration(full: Template) -> None:
    config = full.configuration
    restart, assess = full.step("restart"), full.step("assess")
    assert restart.timeout_for(config) == timedelta(minutes=5)
    assert assess.timeout_for(config) == timedelta(minutes=10)
    assert restart.retries_for(config) == 3 and assess.retries_for(config) == 1
    assert restart.retry_exponential_backoff_for(config) is True
    assert assess.retry_exponential_backoff_for(config) is False
    assert assess.retry_delay_for(config) == timedelta(seconds=30)
    assert assess.max_retry_delay_for(config) == timedelta(minutes=10)
    assert restart.conditions == ["steps.assess.phase != 'Running'"]


def test_rollback_resolution(full: Template, registry: ActionRegistry) -> None:
    own_undo = full.step("restart").resolved_rollback(registry)
    assert own_undo is not None and own_undo.use_undo and own_undo.action.action == "restart_pod"
    assert full.step("scale").resolved_rollback(registry) is None  # rollback: none
    assert full.step("assess").resolved_rollback(registry) is None  # read-only, no undo
    explicit = full.step("check").resolved_rollback(registry)
    assert explicit is not None and not explicit.use_undo
    assert (explicit.action.type, explicit.action.action) == ("kubernetes", "rollback_pod_restart")
    assert explicit.action.parameters == full.step("check").action.parameters


def test_resolve_params(full: Template) -> None:
    values = full.resolve_params({"target": "web-1", "max_restarts": "5", "wait": "90s"})
    assert values == {
        "max_restarts": 5,
        "wait": "90s",
        "target": "web-1",
        "ratio": 0.5,
        "enabled": True,
        "names": [],
        "extra": {},
    }


def test_resolve_params_reports_every_problem(full: Template) -> None:
    with pytest.raises(ParameterError) as info:
        full.resolve_params({"max_restart": 1, "ratio": "half", "wait": "soon"})
    problems = info.value.problems
    assert "unknown parameter 'max_restart'; did you mean 'max_restarts'?" in problems
    assert any("'ratio'" in p and "number" in p for p in problems)
    assert any("'wait'" in p and "duration" in p for p in problems)
    assert "parameter 'target' is required" in problems


def test_matches_alert(full: Template) -> None:
    base = {"severity": "critical", "namespace": "prod-web"}
    assert full.matches_alert({"alertname": "PodCrashLoop", **base})
    assert full.matches_alert({"alertname": "KubePodCrashLooping", **base})
    assert not full.matches_alert({"alertname": "KubePodCrashLooping", **base, "namespace": "dev"})
    assert not full.matches_alert({"alertname": "PodCrashLoop", **base, "severity": "info"})
    assert not full.matches_alert(
        {"alertname": "PodCrashLoop", "severity": "warning", "namespace": "kube-system"}
    )
    assert not full.matches_alert({"alertname": "Other", **base})


def test_dump_round_trips_through_validation(full: Template) -> None:
    again = Template.model_validate(full.model_dump())
    assert again.model_dump() == full.model_dump()
    assert full.model_dump()["matchers"] == ['severity=~"warning|critical"', 'namespace!="kube-system"']


def test_load_templates_isolates_broken_files(
    write: WriteTemplate, registry: ActionRegistry, tmp_path: Path
) -> None:
    write(SEED, name="a.yaml")
    write(SEED.replace("restart_pod,", "restrat_pod,"), name="b.yml")
    write("name: [unclosed\n", name="c.yaml")
    write("not a template", name="notes.txt")
    report = load_templates(tmp_path, registry=registry)
    assert [t.name for t in report.templates] == ["pod-crash-recovery"]
    assert set(report.errors) == {tmp_path / "b.yml", tmp_path / "c.yaml"}
    assert report.errors[tmp_path / "b.yml"][0].path == "steps[1].action.action"
    assert not report.ok


def test_duplicate_template_names_across_files(
    write: WriteTemplate, registry: ActionRegistry, tmp_path: Path
) -> None:
    first = write(SEED, name="a.yaml")
    second = write("# same name\n" + SEED, name="b.yaml")
    report = load_templates(tmp_path, registry=registry)
    assert [t.source for t in report.templates] == [first]
    [error] = report.errors[second]
    assert str(error).startswith(
        f"{second}:2:7: name: template name 'pod-crash-recovery' is already used by {first}"
    )
