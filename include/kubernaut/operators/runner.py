"""One step, end to end, without Airflow: render, check conditions, validate, run.

The operator is a thin shell around ``run_step`` so the whole sequence can be tested
(and used by a local simulator) without an Airflow task context.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from kubernaut.actions.base import ActionContext
from kubernaut.actions.registry import ActionRegistry, registry
from kubernaut.alert import alert_context
from kubernaut.operators.recorder import NullRecorder, StepRecorder
from kubernaut.rendering import RenderError, evaluate_condition, render_value
from kubernaut.secrets import REDACTED, SecretsUnprotected, StepSecrets, redact_registered


class StepInputError(ValueError):
    """The step's rendered input is invalid: retrying cannot help."""


class InjectedFailure(StepInputError):
    """Game-day testing: the run's conf asked this step to fail after its action ran
    (``{"inject_failure": {"step": NAME}}``), to rehearse the rollback. Alerts cannot set it."""


INJECT_KEY = "inject_failure"


@dataclass
class StepSpec:
    """What the runner needs of a template step (plain data, built by the DAG factory)."""

    template: str
    name: str
    action_type: str
    action_name: str
    parameters: dict[str, Any]
    conditions: list[str] = field(default_factory=list)
    rollback: dict[str, Any] | None = None
    dry_run: bool = False
    kube_conn_id: str = "kubernetes_default"


@dataclass
class StepOutcome:
    skipped: bool
    reason: str = ""
    record: dict[str, Any] = field(default_factory=dict)


def render_context(
    conf: Mapping[str, Any] | None, params: Mapping[str, Any], steps: Mapping[str, Any]
) -> dict[str, Any]:
    return {"alert": alert_context(conf), "params": dict(params), "steps": dict(steps)}


def run_step(
    spec: StepSpec,
    *,
    conf: Mapping[str, Any] | None,
    params: Mapping[str, Any],
    steps: Mapping[str, Any],
    timeout: float,
    logger: logging.Logger | Any,
    actions: ActionRegistry = registry,
    recorder: StepRecorder | None = None,
    **context_overrides: Any,
) -> StepOutcome:
    recorder = recorder or NullRecorder()
    try:
        outcome = _run_step(
            spec, conf, params, steps, timeout, logger, actions, recorder, **context_overrides
        )
    except Exception as exc:
        # A policy violation carries what rule and object refused the change: keep it.
        violation = getattr(exc, "record", None)
        result = {"policy_violation": violation} if isinstance(violation, dict) else None
        recorder.finished("failed", result, error=redact_registered(f"{type(exc).__name__}: {exc}"))
        raise
    recorder.finished("skipped" if outcome.skipped else "success", outcome.record or None, outcome.reason)
    return outcome


def _run_step(
    spec: StepSpec,
    conf: Mapping[str, Any] | None,
    params: Mapping[str, Any],
    steps: Mapping[str, Any],
    timeout: float,
    logger: logging.Logger | Any,
    actions: ActionRegistry,
    recorder: StepRecorder,
    **context_overrides: Any,
) -> StepOutcome:
    context = render_context(conf, params, steps)
    for condition in spec.conditions:
        try:
            holds = evaluate_condition(condition, context)
        except RenderError as exc:
            raise StepInputError(f"step {spec.name!r}: {exc}") from exc
        if not holds:
            return StepOutcome(skipped=True, reason=f"condition is false: {condition}")

    action_cls = actions.get(spec.action_type, spec.action_name)
    try:
        rendered = render_value(spec.parameters, context)
    except RenderError as exc:
        raise StepInputError(f"step {spec.name!r}: {exc}") from exc
    # sensitive() values: masked in logs from here on, redacted in what is shown or stored.
    hidden = StepSecrets.of(action_cls.Params, rendered)
    shown = hidden.redact(rendered)
    try:
        params_model = action_cls.Params.model_validate(rendered)
    except ValidationError as exc:
        problems = "; ".join(
            f"parameters.{'.'.join(str(p) for p in e['loc'])}: {e['msg']} "
            f"(got {REDACTED if e['loc'] and e['loc'][0] in hidden.values else repr(e.get('input'))})"
            for e in exc.errors()
        )
        raise StepInputError(
            f"step {spec.name!r} ({spec.action_type}/{spec.action_name}): {problems}"
        ) from exc

    dry_run = spec.dry_run or bool((conf or {}).get("dry_run", False))
    action = action_cls()
    mutating = action.is_mutating(params_model)  # http_request: by method
    if mutating and not dry_run and not recorder.durable:
        raise StepInputError(
            f"step {spec.name!r} makes a change but no history database is configured for its "
            "undo journal (Airflow connection 'kubernaut_history'); refusing to change anything"
        )
    if mutating and not dry_run:
        try:
            hidden.check_key()  # the undo record will be sealed: fail before any change
        except SecretsUnprotected as exc:
            raise StepInputError(f"step {spec.name!r}: {exc}") from exc
    recorder.started(shown)
    ctx = ActionContext(
        dry_run=dry_run,
        timeout=timeout,
        kube_conn_id=spec.kube_conn_id,
        logger=logger,
        prior_undo=hidden.open(recorder.prior_undo()) if mutating else None,
        save_undo=lambda record: recorder.save_undo(hidden.seal(record)),
        **context_overrides,
    )
    logger.info(
        "kubernaut: %s %s/%s%s with %s",
        spec.name,
        spec.action_type,
        spec.action_name,
        " (dry run)" if dry_run else "",
        shown,
    )
    result = action.execute(ctx, params_model)
    injected = (conf or {}).get(INJECT_KEY)
    if isinstance(injected, Mapping) and injected.get("step") == spec.name:
        raise InjectedFailure(
            f"step {spec.name!r}: failure injected after the action ran (conf.{INJECT_KEY})"
        )
    record = {
        "template": spec.template,
        "step": spec.name,
        "action": f"{spec.action_type}/{spec.action_name}",
        "parameters": shown,
        "dry_run": dry_run,
        "mutating": mutating,
        "rollback": spec.rollback,
        **result.to_dict(),
    }
    if hidden:  # the undo record (old secret data) stays in the sealed journal only
        record.update(output=hidden.scrub(record["output"]), undo=None if result.undo is None else REDACTED)
    return StepOutcome(skipped=False, record=record)
