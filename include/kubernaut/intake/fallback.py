"""Fallback chains: when a run rolls back, or is assessed ineffective, the next remedy for the
same alert occurrence is launched (once), and the chain ends with a person.

Which template comes next: the failed run's template's ``fallback`` (``none``: straight to a
person), else the next-ranked template that answers the alert (``kubernaut.intake.choice``,
every specificity, those already run for this occurrence left out). The run that failed
hands on from its own tasks (``finalize`` for a rolled-back run, ``assess_effectiveness`` for
an ineffective verdict) through the intake's own launching flow (``Launcher.fallback``): the
same records and checks as an alert (duplicate, paused, protected, blocked, busy, cooldown;
not backoff, which spaces repeat runs), with Airflow reached through the task's Execution
API (no credentials in the worker). The fallback's run id is the occurrence's
``alert__<fingerprint>__<start>`` plus ``__fallback__<template>``: a retried task, or a
rolled-back run that is later also assessed ineffective, cannot launch it twice; each
template runs at most once per occurrence, so a chain always ends.

What each run handed on to is recorded as its outcome of kind ``fallback`` (``launched``,
``duplicate``, or ``escalated`` with the reason); escalation notifies
``notify_conn_id`` when configured.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernaut.alert import derive_target
from kubernaut.clusters import ClusterMap
from kubernaut.config import ChoiceConfig, KubernautConfig
from kubernaut.intake.airflow_client import AirflowUnavailable, Triggered
from kubernaut.intake.choice import Candidate, explain, occurrence_seed, rank
from kubernaut.intake.decisions import AirflowPort, Decider, Decision, HistoryPort, dag_run_id
from kubernaut.intake.evidence import later_launches, template_outcomes, tried_templates
from kubernaut.intake.launcher import Launcher
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Router
from kubernaut.template_params import TemplateParameters
from kubernaut.templates import Template

log = logging.getLogger(__name__)
T = TypeVar("T")
HANDS_ON = ("rolled_back",)  # run outcomes whose finalize hands on (ineffective: the assessment)
OUTCOME_KIND = "fallback"
# Runs that hand nothing on, whatever their assessment says.
NEVER_HAND_ON = {
    "partially_rolled_back": "already escalated; another remedy on a half-undone change is not safe",
    "rollback_failed": "already escalated; another remedy on a half-undone change is not safe",
    "declined": "a person declined the remediation",
}


@dataclass(frozen=True)
class Next:
    template: Template | None  # None: the chain ends here
    why: str


def next_template(
    router: Router,
    failed: str,
    alert: Alert,
    tried: set[str],
    *,
    history: Any = None,
    choice: ChoiceConfig | None = None,
    now: datetime | None = None,
) -> Next:
    """The template to launch after a run of ``failed`` did not fix ``alert``'s occurrence."""
    choice = choice or ChoiceConfig()
    declared = (t := router.template(failed)) and t.fallback
    if declared == "none":
        return Next(None, f"template {failed!r} declares `fallback: none`")
    if declared:
        if declared in tried:
            return Next(None, f"{failed!r}'s fallback {declared!r} already ran for this alert occurrence")
        found = router.template(declared)
        if found is None:
            return Next(None, f"{failed!r}'s fallback {declared!r} is not a loaded template")
        return Next(found, f"{failed!r} names {declared!r} as its fallback")
    route = router.route(alert.labels)
    left = [(s, t) for s, t in (route.alternatives if route else ()) if t.name not in tried | {failed}]
    if not left:
        return Next(None, f"no other template answers {alert.alertname} that has not run for this occurrence")
    target = derive_target(alert.labels)
    evidence = None
    if history is not None:
        since = (now or datetime.now(UTC)) - choice.window
        evidence = template_outcomes(history, alert.alertname, target.kind, [t.name for _, t in left], since)
    ranking = rank(
        [Candidate(t.name, s, t.priority) for s, t in left],
        evidence,
        namespace=target.namespace,
        seed=occurrence_seed(choice.seed, alert.fingerprint, alert.startsAt, "fallback"),
        prior_strength=choice.prior_strength,
        namespace_runs=choice.namespace_runs,
    )
    chosen = next(t for _, t in left if t.name == ranking[0].name)
    detail = explain(ranking) or ranking[0].figures()
    return Next(chosen, f"next-ranked template for {alert.alertname} ({detail})")


@dataclass(frozen=True)
class HandOn:
    outcome: str  # launched | duplicate | escalated | none
    reason: str
    template: str = ""
    dag_run_id: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "template": self.template,
            "dag_run_id": self.dag_run_id,
        }


async def hand_on(
    launcher: Launcher,
    router: Router,
    history: Any,
    alert: Alert,
    failed_template: str,
    failed_run_id: str,
    failure: str,
    choice: ChoiceConfig,
) -> HandOn:
    """Launch the next template of the chain for the occurrence, or say why the chain ends."""
    if not choice.fallback:
        return HandOn("escalated", "fallbacks are off (choice.fallback: false)")
    base = dag_run_id(alert)
    done = await launcher.history(lambda h: later_launches(h, base, failed_run_id))
    if done:  # handed on already (a retried task, a crash before the outcome was recorded)
        first = done[0]
        why = f"run {first['dag_run_id']} already launched for this occurrence after {failed_run_id}"
        return HandOn("duplicate", why, str(first["template"]), str(first["dag_run_id"]))
    tried = await launcher.history(lambda h: tried_templates(h, base))
    nxt = await launcher.history(
        lambda h: next_template(
            router, failed_template, alert, tried | {failed_template}, history=h, choice=choice
        )
    )
    if nxt.template is None:
        return HandOn("escalated", nxt.why)
    why = f"{failed_template} {failure}; {nxt.why}"
    d = await launcher.fallback(alert, nxt.template, failed_run_id, why)
    if d.decision is Decision.TRIGGERED:
        return HandOn("launched", d.reason, d.template, d.dag_run_id)
    if d.decision is Decision.DUPLICATE:
        return HandOn("duplicate", d.reason, d.template, d.dag_run_id)
    return HandOn(
        "escalated", f"fallback {nxt.template.name!r} not launched: {d.decision}: {d.reason}", d.template
    )


# -- from a run's own task ----------------------------------------------------------------------
class TaskAirflow:
    """``AirflowPort`` from inside a running task: the Execution API through its supervisor."""

    def _send(self, msg: Any) -> Any:
        from airflow.sdk.exceptions import AirflowRuntimeError
        from airflow.sdk.execution_time import task_runner

        comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
        if comms is None:
            raise AirflowUnavailable("not in an Airflow task: no Execution API")
        try:
            return comms.send(msg)
        except AirflowRuntimeError as exc:
            return exc.error

    async def warm(self) -> None:
        return None

    async def dag_paused(self, dag_id: str) -> bool:
        from airflow.sdk.execution_time.comms import ErrorResponse, GetDag

        answer = self._send(GetDag(dag_id=dag_id))
        if isinstance(answer, ErrorResponse) or answer is None:
            raise AirflowUnavailable(f"DAG {dag_id}: the Execution API answered {answer!r}")
        return bool(answer.is_paused)

    async def run_exists(self, dag_id: str, run_id: str, *, attempts: int | None = None) -> bool:
        from airflow.sdk.execution_time.comms import ErrorResponse, GetDagRunState

        answer = self._send(GetDagRunState(dag_id=dag_id, run_id=run_id))
        return answer is not None and not isinstance(answer, ErrorResponse)

    async def trigger(self, dag_id: str, run_id: str, conf: Mapping[str, Any]) -> Triggered:
        from airflow.sdk.exceptions import ErrorType
        from airflow.sdk.execution_time.comms import ErrorResponse, TriggerDagRun

        answer = self._send(TriggerDagRun(dag_id=dag_id, run_id=run_id, conf=dict(conf)))
        if isinstance(answer, ErrorResponse):
            if answer.error == ErrorType.DAGRUN_ALREADY_EXISTS:
                return Triggered.EXISTED
            raise AirflowUnavailable(f"run {run_id} of {dag_id}: {answer.error.value} {answer.detail}")
        return Triggered.CREATED


class _Inline:
    """``HistoryRunner`` for a task: the history's work runs right here (no event loop to spare)."""

    def __init__(self, history: HistoryPort) -> None:
        self.h = history

    async def __call__(self, work: Callable[[HistoryPort], T]) -> T:
        return work(self.h)


def after_run(
    run: Any,
    dag_run_id_: str,
    template: str,
    failure: str,
    *,
    airflow: AirflowPort | None = None,
    router: Router | None = None,
    history: HistoryPort | None = None,
    logger: Any = None,
) -> HandOn:
    """From a run's task (``run``: its ``RunContext``): hand the occurrence on to the next
    template, or escalate; recorded as the run's ``fallback`` outcome. Never raises: the
    task's own result stands whatever happens here."""
    logger = logger or log
    try:
        result = _after_run(run, dag_run_id_, template, failure, airflow, router, history)
    except Exception as exc:
        result = HandOn("escalated", f"the fallback could not be launched: {type(exc).__name__}: {exc}")
    if result.outcome == "none":
        return result
    logger.info(
        "kubernaut: fallback after %s (%s): %s: %s", dag_run_id_, failure, result.outcome, result.reason
    )
    if run.history is not None and run.run_id is not None:
        try:
            run.history.record_outcome(run.run_id, OUTCOME_KIND, result.outcome, result.as_dict())
        except Exception as exc:
            logger.error("kubernaut: could not record the fallback outcome: %s", exc)
    if result.outcome == "escalated":
        escalate(run.config, dag_run_id_, template, failure, result.reason, logger)
    return result


def _after_run(
    run: Any,
    run_id: str,
    template: str,
    failure: str,
    airflow: AirflowPort | None,
    router: Router | None,
    history: HistoryPort | None,
) -> HandOn:
    config: KubernautConfig = run.config
    raw = (run.conf or {}).get("alert")
    try:
        alert = Alert.model_validate(raw)
    except Exception:
        return HandOn("none", "the run has no alert occurrence (not launched by the intake)")
    if run.history is not None and run.run_id is not None:
        if _handed_on(run.history, run.run_id):
            return HandOn("none", "this run already handed on")
        status = _status(run.history, run.run_id)
        if status in NEVER_HAND_ON:
            return HandOn("none", f"the run ended {status}: {NEVER_HAND_ON[status]}")
    if router is None:
        from kubernaut.paths import templates_dir
        from kubernaut.templates import load_templates

        router = Router(load_templates(templates_dir()).templates)
    own = history
    if own is None:
        from kubernaut.intake.history_checks import IntakeHistory

        own = IntakeHistory(config.history_conn_id)
    try:
        decider = Decider(
            router,
            config.policy,
            max_failures=int(os.environ.get("KUBERNAUT_MAX_CONSECUTIVE_FAILURES", 3)),
            clusters=ClusterMap.from_config(config),
            blocking=config.blocking,
        )
        decider.choice = config.choice
        decider.parameters = TemplateParameters.from_config(config)
        launcher = Launcher(decider, _Inline(own), airflow or TaskAirflow())
        return asyncio.run(hand_on(launcher, router, own, alert, template, run_id, failure, config.choice))
    finally:
        if history is None:
            close = getattr(own, "close", None)
            if callable(close):
                close()


def _status(history: Any, run_id: int) -> str:
    rows = history._query("SELECT status FROM kubernaut_runs WHERE id = %s", (run_id,))
    return str(rows[0]["status"]) if rows else ""


def _handed_on(history: Any, run_id: int) -> bool:
    rows = history._query(
        "SELECT 1 FROM kubernaut_outcomes WHERE run_id = %s AND kind = %s LIMIT 1", (run_id, OUTCOME_KIND)
    )
    return bool(rows)


def escalate(
    config: KubernautConfig, run_id: str, template: str, failure: str, why: str, logger: Any
) -> None:
    """The end of a chain: a person must look (``notify`` when ``notify_conn_id`` is set)."""
    message = f"kubernaut: {run_id} ({template}) {failure}; no further remedy: {why}; a person must look"
    logger.warning("%s", message)
    if not config.notify_conn_id:
        return
    try:
        from kubernaut.actions.base import ActionContext
        from kubernaut.actions.registry import registry

        notify = registry.get("monitoring", "notify")
        params = notify.Params.model_validate(
            {
                "title": "kubernaut: remediation chain ended without a fix, a person must look",
                "message": message,
                "severity": "critical",
                "fields": {"run": run_id, "template": template, "outcome": failure, "reason": why},
            }
        )
        notify().execute(ActionContext(logger=logger, _config=config), params)
    except Exception as exc:
        logger.error("kubernaut: escalation notification failed: %s", exc)
