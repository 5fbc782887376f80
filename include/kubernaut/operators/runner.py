"""One step, end to end, without Airflow: render, check conditions, validate, run, wait.

The operator is a thin shell around ``run_step`` so the whole sequence can be tested
(and used by a local simulator) without an Airflow task context. With ``can_defer`` a step
whose wait is not over at its first look returns ``StepOutcome.pending`` instead of waiting:
the operator hands the wait to the triggerer and, when it ends, calls ``resume_step``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from kubernaut.actions.base import ActionContext, ActionResult
from kubernaut.actions.registry import ActionRegistry, registry
from kubernaut.alert import alert_context
from kubernaut.operators.recorder import NullRecorder, StepRecorder
from kubernaut.operators.spec import StepSpec as StepSpec  # where it is defined now
from kubernaut.rendering import RenderError, evaluate_condition, render_value
from kubernaut.secrets import REDACTED, SecretsUnprotected, StepSecrets, redact_registered
from kubernaut.waits.spec import WaitOutcome, WaitSpec, WaitSpecError


class StepInputError(ValueError):
    """The step's rendered input is invalid: retrying cannot help."""


class InjectedFailure(StepInputError):
    """Game-day testing: the run's conf asked this step to fail after its action ran
    (``{"inject_failure": {"step": NAME}}``), to rehearse the rollback. Alerts cannot set it."""


INJECT_KEY = "inject_failure"
# A wait with less time than this left runs where the step runs: deferring costs more.
MIN_DEFER_SECONDS = 5.0
RESUME_VERSION = 1


@dataclass
class StepOutcome:
    skipped: bool
    reason: str = ""
    record: dict[str, Any] = field(default_factory=dict)
    # Set when the step deferred its wait: the wait, and what ``resume_step`` needs to finish.
    wait: WaitSpec | None = None
    resume: dict[str, Any] | None = None

    @property
    def pending(self) -> bool:
        return self.wait is not None


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
    can_defer: bool = False,
    **context_overrides: Any,
) -> StepOutcome:
    recorder = recorder or NullRecorder()
    try:
        outcome = _run_step(
            spec, conf, params, steps, timeout, logger, actions, recorder, can_defer, **context_overrides
        )
    except Exception as exc:
        _record_failure(recorder, exc)
        raise
    if not outcome.pending:
        recorder.finished("skipped" if outcome.skipped else "success", outcome.record or None, outcome.reason)
    return outcome


def _record_failure(recorder: StepRecorder, exc: Exception) -> None:
    # A policy violation carries what rule and object refused the change: keep it.
    violation = getattr(exc, "record", None)
    result = {"policy_violation": violation} if isinstance(violation, dict) else None
    recorder.finished("failed", result, error=redact_registered(f"{type(exc).__name__}: {exc}"))


def resume_step(
    spec: StepSpec,
    event: Mapping[str, Any],
    *,
    conf: Mapping[str, Any] | None,
    logger: logging.Logger | Any,
    actions: ActionRegistry = registry,
    recorder: StepRecorder | None = None,
    **context_overrides: Any,
) -> StepOutcome:
    """Finish a step whose wait ran in the triggerer: ``event`` is the trigger's one event
    (the wait's outcome and the ``resume`` state ``run_step`` returned). Records and returns
    what a step that waited in place would have."""
    recorder = recorder or NullRecorder()
    try:
        outcome = _resume_step(spec, event, conf, logger, actions, **context_overrides)
    except Exception as exc:
        _record_failure(recorder, exc)
        raise
    recorder.finished("success", outcome.record or None, outcome.reason)
    return outcome


def _resume_step(
    spec: StepSpec,
    event: Mapping[str, Any],
    conf: Mapping[str, Any] | None,
    logger: logging.Logger | Any,
    actions: ActionRegistry,
    **context_overrides: Any,
) -> StepOutcome:
    resume = event.get("resume") if isinstance(event, Mapping) else None
    if not isinstance(resume, Mapping) or resume.get("version") != RESUME_VERSION:
        raise StepInputError(
            f"step {spec.name!r}: the wait's event carries no resume state of version {RESUME_VERSION} "
            f"(got {type(resume).__name__}); run the step again"
        )
    try:
        outcome = WaitOutcome.from_event(dict(event))
    except WaitSpecError as exc:
        raise StepInputError(f"step {spec.name!r}: {exc}") from exc
    action_cls = actions.get(spec.action_type, spec.action_name)
    params_model = action_cls.Params.model_validate(resume["parameters"])
    ctx = ActionContext(
        dry_run=bool(resume["dry_run"]),
        timeout=max(0.0, float(resume["step_deadline"]) - time.time()),
        kube_conn_id=spec.kube_conn_id,
        logger=logger,
        **context_overrides,
    )
    logger.info(
        "kubernaut: %s: wait %s after %.1fs (%d polls)%s",
        spec.name,
        outcome.status,
        outcome.waited,
        outcome.polls,
        f": {outcome.message}" if outcome.message else "",
    )
    action = action_cls()
    result = action.finish(ctx, params_model, ActionResult.from_dict(resume["result"]), outcome)
    _check_injected(spec, conf)
    record = _record(spec, resume["parameters"], ctx.dry_run, resume["mutating"], result)
    return StepOutcome(skipped=False, record={**record, "wait": _wait_summary(resume["what"], outcome, True)})


def _wait_summary(what: str, outcome: WaitOutcome, deferred: bool) -> dict[str, Any]:
    """How the step waited, for its record: in the triggerer (``deferred``) or where it ran."""
    return {
        "what": what,
        "status": outcome.status,
        "polls": outcome.polls,
        "seconds": round(outcome.waited, 1),
        "deferred": deferred,
    }


def _check_injected(spec: StepSpec, conf: Mapping[str, Any] | None) -> None:
    injected = (conf or {}).get(INJECT_KEY)
    if isinstance(injected, Mapping) and injected.get("step") == spec.name:
        raise InjectedFailure(
            f"step {spec.name!r}: failure injected after the action ran (conf.{INJECT_KEY})"
        )


def _record(
    spec: StepSpec, shown: dict[str, Any], dry_run: bool, mutating: bool, result: ActionResult
) -> dict[str, Any]:
    return {
        "template": spec.template,
        "step": spec.name,
        "action": f"{spec.action_type}/{spec.action_name}",
        "parameters": shown,
        "dry_run": dry_run,
        "mutating": mutating,
        "rollback": spec.rollback,
        **result.to_dict(),
    }


def _run_step(
    spec: StepSpec,
    conf: Mapping[str, Any] | None,
    params: Mapping[str, Any],
    steps: Mapping[str, Any],
    timeout: float,
    logger: logging.Logger | Any,
    actions: ActionRegistry,
    recorder: StepRecorder,
    can_defer: bool,
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
    result = action.start(ctx, params_model)
    wait = action.pending_wait(ctx, params_model, result)
    outcome: WaitOutcome | None = None
    if wait is not None:
        # Secret parameters never leave the task (the resume state would carry them): such a
        # step waits where it runs, as does a wait too short to be worth deferring.
        deferrable = can_defer and not hidden and wait.remaining() >= MIN_DEFER_SECONDS
        outcome = _wait_here(wait, ctx, once=deferrable)
        if deferrable and outcome.status not in ("done", "failed"):
            resume = {
                "version": RESUME_VERSION,
                "parameters": shown,
                "dry_run": dry_run,
                "mutating": mutating,
                "result": result.to_dict(),
                "step_deadline": time.time() + ctx.remaining(),
                "what": wait.what,
            }
            logger.info(
                "kubernaut: %s: waiting for %s in the triggerer (%.0fs at most)",
                spec.name,
                wait.what,
                wait.remaining(),
            )
            return StepOutcome(skipped=False, wait=wait, resume=resume)
    result = action.finish(ctx, params_model, result, outcome)
    _check_injected(spec, conf)
    record = _record(spec, shown, dry_run, mutating, result)
    if wait is not None and outcome is not None:
        record["wait"] = _wait_summary(wait.what, outcome, False)
    if hidden:  # the undo record (old secret data) stays in the sealed journal only
        record.update(output=hidden.scrub(record["output"]), undo=None if result.undo is None else REDACTED)
    return StepOutcome(skipped=False, record=record)


def _wait_here(wait: WaitSpec, ctx: ActionContext, *, once: bool) -> WaitOutcome:
    """Run the wait in this process; ``once``: one look only (is it over already?)."""
    from kubernaut.waits.driver import wait_here

    if once:
        wait = dataclasses.replace(wait, deadline=time.time())
    return wait_here(wait, ctx.kube_conn_id, ctx.logger)
