"""A template compiled for its DAG: plain data, all that building the DAG needs.

The DAG processor parses the entry file in a fresh process every interval, and every task
start parses it again. For a template whose text has not changed, the parse reads its plan
back from the template cache (kubernaut.templates.cache: no YAML, no schema, no checks, no
pydantic) and builds the DAG from it (kubernaut.factory.build_plan). A plan is builtins only
(durations in seconds, the step's ``StepSpec`` as a dict): unpickling objects instead cost six
times more, more than the rest of reading it back.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypedDict

from kubernaut.operators.spec import StepSpec

if TYPE_CHECKING:
    from kubernaut.templates.model import Step, Template

PLAN = "dag-plan"  # its kind in the template cache
NONE_FAILED = "none_failed"  # a step skipped by its condition must not skip its dependents


# Operator arguments that are durations: seconds in a plan, ``timedelta`` for the operator.
DURATIONS = ("execution_timeout", "retry_delay", "max_retry_delay", "response_timeout")


class StepPlan(TypedDict):
    """One step: its operator's kind and keyword arguments (``spec``: a ``StepSpec``'s fields),
    its approval gate's (if any)."""

    name: str
    kind: str  # the action type, which picks the operator (kubernaut.operators.operator_for)
    task: dict[str, Any]
    gate: dict[str, Any] | None
    upstream: list[str]  # the steps it follows


class DagPlan(TypedDict):
    name: str
    dag_id: str
    description: str
    max_active_runs: int
    tags: list[str]
    alertnames: list[str]
    steps: list[StepPlan]
    parameters: dict[str, dict[str, Any]]  # the template's declarations (``Parameter.model_dump()``)
    assessment: dict[str, Any]  # the template's ``effectiveness`` for finalize


def upstream_closure(deps: dict[str, list[str]]) -> dict[str, list[str]]:
    """Every step a step transitively depends on, in step order (what it may read)."""
    order = list(deps)
    closure: dict[str, set[str]] = {}
    for name in order:  # effective_dependencies only points backwards in the list
        seen: set[str] = set()
        for up in deps[name]:
            seen |= {up, *closure.get(up, set())}
        closure[name] = seen
    return {name: [s for s in order if s in closure[name]] for name in order}


def rollback_spec(step: Step) -> dict[str, Any]:
    """How this step is undone, recorded with its result: own undo, an action, or none."""
    from kubernaut.templates.model import Rollback

    if step.rollback == "none":
        return {"mode": "none"}
    if isinstance(step.rollback, Rollback):
        return {"mode": "action", **step.rollback.model_dump(exclude_none=True)}
    return {"mode": "undo"}


def step_spec(template: Template, step: Step, *, dry_run: bool, kube_conn_id: str) -> StepSpec:
    """What the step runner is given for one step of a template (an Airflow task or a simulated step)."""
    return StepSpec(
        template=template.name,
        name=step.name,
        action_type=step.action.type,
        action_name=step.action.action,
        parameters=dict(step.action.parameters),
        conditions=list(step.conditions),
        rollback=rollback_spec(step),
        dry_run=dry_run,
        kube_conn_id=kube_conn_id,
    )


def _step_plan(template: Template, step: Step, deps: list[str], reads: list[str]) -> StepPlan:
    config = template.configuration
    spec = step_spec(template, step, dry_run=config.dry_run, kube_conn_id=config.kubernetes_conn_id)
    task: dict[str, Any] = {
        "task_id": step.name,
        "spec": dataclasses.asdict(spec),
        "upstream_steps": reads,
        "execution_timeout": step.timeout_for(config).total_seconds(),
        "retries": step.retries_for(config),
        "retry_delay": step.retry_delay_for(config).total_seconds(),
    }
    if step.description:
        task["doc_md"] = step.description
    if step.retry_exponential_backoff_for(config):
        # Airflow reads max_retry_delay only with a backoff: each argument costs at every parse.
        task["retry_exponential_backoff"] = 2.0
        task["max_retry_delay"] = step.max_retry_delay_for(config).total_seconds()
    if deps:
        task["trigger_rule"] = NONE_FAILED
    gate = None
    if step.approval == "required":
        on_reject = (
            "the changes made before it are kept"
            if step.on_reject == "keep"
            else "the changes made before it are rolled back"
        )
        gate = {
            "task_id": f"approve-{step.name}",
            "template": template.name,
            "step": step.name,
            "on_reject": step.on_reject,
            "subject": f"Approve step '{step.name}' of remediation '{template.name}'?",
            "body": (
                f"{step.action.type}/{step.action.action}: {step.description}\n\n"
                f"Reject ends the run as declined; {on_reject}."
            ),
            "response_timeout": step.approval_timeout_for(config).total_seconds(),
            # Only to survive Airflow's stale-executor-event race: a retry reuses the answer
            # already given, never asks again (see operators/approval.py).
            "retries": 2,
            "retry_delay": 3.0,
            "trigger_rule": NONE_FAILED if deps else "all_success",
        }
    return StepPlan(name=step.name, kind=step.action.type, task=task, gate=gate, upstream=list(deps))


def assessment_settings(template: Template) -> dict[str, Any]:
    """The template's ``effectiveness`` for its runs' assessment (None: the configuration's)."""
    eff = template.effectiveness
    return {
        "after": eff.after.total_seconds() if eff.after is not None else None,
        "window": eff.window.total_seconds() if eff.window is not None else None,
        "metrics": [m.model_dump() for m in eff.metrics],
    }


def plan_of(template: Template) -> DagPlan:
    """The plan of a valid template's DAG."""
    deps = template.effective_dependencies()
    reads = upstream_closure(deps)
    return DagPlan(
        name=template.name,
        dag_id=template.dag_id,
        description=template.description,
        max_active_runs=template.configuration.max_active_runs,
        tags=["kubernaut", f"template:{template.name}", *template.tags],
        alertnames=[a.alertname for a in template.alert_types],
        steps=[_step_plan(template, s, deps[s.name], reads[s.name]) for s in template.steps],
        parameters={name: p.model_dump() for name, p in template.parameters.items()},
        assessment=assessment_settings(template),
    )
