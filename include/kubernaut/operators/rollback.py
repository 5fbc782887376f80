"""The visible rollback path of every remediation DAG, and the failure callback.

``rollback`` (trigger rule all_done, after the last steps) undoes the journaled changes when
the run did not do all it meant to: a step or an approval gate ``failed`` (timed out
included) or ``upstream_failed``, or a person rejected a gate (unless that step says
``on_reject: keep``). The scheduler starts it in the triggerer
(``kubernaut.triggers.rollback``), which ends it ``skipped`` when no step failed in a run
without gates, and hands it to a worker (``execute``) otherwise. ``finalize`` (all_done)
records the outcome and fails the run unless it is ``success``: a run is green only when
every step it meant to run succeeded.

The callback on each step is a fast path only: it declines while retries remain, and the
journal makes a second or late call a no-op (apache/airflow #65400, #63374).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.triggers.base import StartTriggerArgs

from kubernaut.operators.base import KubernautOperator
from kubernaut.triggers.rollback import FAILED_STATES, ROLLBACK_TRIGGER

# What the tasks need to run is imported when they run: the DAG processor imports this module
# for every parse (kubernaut.preload imports it all once in the process that forks the tasks).
if TYPE_CHECKING:
    from kubernaut.actions.base import ActionContext
    from kubernaut.operators.run_context import RunContext
    from kubernaut.operators.runner import StepSpec
    from kubernaut.rollback import RollbackReport

ROLLBACK_TASK, FINALIZE_TASK = "rollback", "finalize"
GREEN_OUTCOMES = ("success", "not_needed")  # a run ends green only as one of these


def _step_operators(dag: Any) -> dict[str, Any]:
    from kubernaut.operators.step import KubernautStepOperator

    return {t.task_id: t for t in dag.tasks if isinstance(t, KubernautStepOperator)}


def _states(context: Any, task_ids: list[str]) -> dict[str, str]:
    ti, dag_run = context["ti"], context["dag_run"]
    found = ti.get_task_states(dag_id=dag_run.dag_id, task_ids=task_ids, run_ids=[dag_run.run_id])
    states = found.get(dag_run.run_id, found)
    return {task_id: str(states.get(task_id)) for task_id in task_ids}


@dataclass
class RunState:
    """What the steps and gates of this run ended as, read when rollback/finalize start."""

    states: dict[str, str]
    failed: list[str] = field(default_factory=list)  # steps and gates in FAILED_STATES
    rejected: list[str] = field(default_factory=list)  # gates a person answered with Reject
    rollback_on_reject: bool = False  # a rejected gate asks for the earlier changes to be undone
    others: dict[str, str] = field(default_factory=dict)  # the states of ``also`` (read()), apart

    @classmethod
    def read(cls, context: Any, also: Sequence[str] = ()) -> RunState:
        """``also``: tasks whose states to read in the same Execution API call."""
        from kubernaut.operators.approval import approval_gates, rejected_gates

        dag = context["dag"]
        gates = approval_gates(dag)
        watched = [*_step_operators(dag), *gates]
        found = _states(context, [*watched, *also])
        states = {t: found[t] for t in watched}
        rejected = rejected_gates(context) if gates else []
        return cls(
            states=states,
            failed=[t for t, s in states.items() if s in FAILED_STATES],
            rejected=rejected,
            rollback_on_reject=any(gates[g].on_reject == "rollback" for g in rejected),
            others={t: found[t] for t in also},
        )

    @property
    def needs_rollback(self) -> bool:
        return bool(self.failed) or self.rollback_on_reject


def _render_contexts(context: Any, run: RunContext, log: Any) -> dict[str, dict[str, Any]]:
    """Per step, the rendering context it had (alert, run parameters, its upstream outputs),
    so a template's ``rollback:`` parameters render exactly as the step's did."""
    from kubernaut.operators.runner import render_context
    from kubernaut.template_params import TemplateParameters

    steps = _step_operators(context["dag"])
    ti = context["ti"]
    outputs: dict[str, Any] = {}
    for name in steps:
        record = ti.xcom_pull(task_ids=name)
        if isinstance(record, Mapping):
            outputs[name] = record.get("output", {})
    try:
        first = next(iter(steps.values())) if steps else None
        configured = TemplateParameters.from_config(run.config)
        params = (
            first.resolve_params(
                configured.for_run(first.spec.template, run.cluster.name, run.conf.get("params"))
            )
            if first is not None
            else {}
        )
    except ValueError as exc:  # the steps failed on this too; render what can be rendered
        log.error("kubernaut: run parameters are invalid (%s); rollback renders without them", exc)
        params = {}
    return {
        name: render_context(run.conf, params, {u: outputs[u] for u in op.upstream_steps if u in outputs})
        for name, op in steps.items()
    }


def _run_rollback(context: Any, run: RunContext, log: Any) -> RollbackReport | None:
    from kubernaut.actions.base import ActionContext
    from kubernaut.operators.runner import render_context
    from kubernaut.rollback import rollback_run

    if run.history is None or run.run_id is None:
        log.error("kubernaut: cannot roll back: no history database to read the undo journal from")
        return None
    specs: dict[str, StepSpec] = {n: op.spec for n, op in _step_operators(context["dag"]).items()}
    conn_id = run.kube_conn_id  # the run's cluster: undo goes where the steps made the changes

    def make_context() -> ActionContext:
        return ActionContext(timeout=300.0, kube_conn_id=conn_id, logger=log, _config=run.config)

    rollbacks = {name: spec.rollback or {"mode": "undo"} for name, spec in specs.items()}
    contexts = _render_contexts(context, run, log)
    fallback = render_context(run.conf, {}, {})
    return rollback_run(
        run.history, run.run_id, rollbacks, make_context, lambda step: contexts.get(step, fallback), log
    )


def rollback_on_failure(context: Any) -> None:
    """on_failure_callback of every step: roll back now if this was the step's last attempt."""
    ti, task = context["ti"], context["task"]
    if ti.try_number <= (task.retries or 0):
        task.log.info("kubernaut: step %s will be retried; no rollback yet", task.task_id)
        return
    from kubernaut.operators.run_context import RunContext

    try:
        run = RunContext.open(context, task.spec.template, dry_run=False)
        _run_rollback(context, run, task.log)
    except Exception as exc:  # the rollback task is the guarantee; never mask the step's error
        task.log.error("kubernaut: rollback from failure callback failed: %s", exc)


def _notify(context: Any, run: RunContext, title: str, result: Mapping[str, Any], log: Any) -> None:
    if not run.config.notify_conn_id:
        return
    from kubernaut.actions.base import ActionContext
    from kubernaut.actions.registry import registry

    try:
        notify = registry.get("monitoring", "notify")
        params = notify.Params.model_validate(
            {
                "title": title,
                "message": (
                    f"kubernaut: {context['dag_run'].run_id}: {title}; undo failed: "
                    f"{', '.join(result.get('failed', [])) or 'none'}; cannot be undone: "
                    f"{', '.join(result.get('not_restorable', [])) or 'none'}"
                ),
                "severity": "critical",
                "fields": {"dag_id": context["dag_run"].dag_id, **dict(result)},
            }
        )
        notify().execute(ActionContext(logger=log, _config=run.config), params)
    except Exception as exc:
        log.error("kubernaut: escalation notification failed: %s", exc)


class KubernautRollbackOperator(KubernautOperator):
    """Undo every journaled change in reverse completion order when the run did not succeed.

    ``steps``, ``gates``: the task ids of the run's steps and approval gates. Given steps, the
    scheduler starts the task in the triggerer (``RollbackCheckTrigger``): it ends there
    ``skipped`` when nothing failed, or resumes here in ``execute_complete``."""

    def __init__(
        self, *, template: str, steps: Sequence[str] = (), gates: Sequence[str] = (), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.template = template
        if steps:
            self.start_from_trigger = True
            self.start_trigger_args = StartTriggerArgs(
                trigger_cls=ROLLBACK_TRIGGER,
                trigger_kwargs={"steps": list(steps), "gates": list(gates)},
                next_method="execute_complete",
                next_kwargs=None,
                timeout=None,
            )

    def execute_complete(self, context: Any, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Handed over by the triggerer: decide and undo here, from the same states."""
        self.log.info("kubernaut: from the triggerer: %s", (event or {}).get("reason", ""))
        return self.execute(context)

    def execute(self, context: Any) -> dict[str, Any]:
        state = RunState.read(context)
        if not state.needs_rollback:
            reason = "kept (on_reject: keep)" if state.rejected else "nothing failed"
            raise AirflowSkipException(f"no rollback: {reason}")
        why = [f"{t} {state.states[t]}" for t in state.failed] + [f"{g} rejected" for g in state.rejected]
        self.log.info("kubernaut: %s; rolling back", ", ".join(why))
        from kubernaut.operators.run_context import RunContext

        run = RunContext.open(context, self.template, dry_run=False)
        report = _run_rollback(context, run, self.log)
        if report is None:
            raise AirflowFailException(
                "rollback impossible: the history database (undo journal) is unavailable"
            )
        result = {"failed_steps": state.failed, "rejected": state.rejected, **report.to_dict()}
        if report.failed or report.not_restorable:
            if run.history is not None and run.run_id is not None:
                run.history.record_outcome(run.run_id, "rollback", "escalated", dict(result))
            title = (
                "kubernaut: rollback incomplete, a human must look"
                if report.failed
                else "kubernaut: changes that cannot be undone remain, a human must look"
            )
            _notify(context, run, title, result, self.log)
        if report.failed:
            raise AirflowFailException(
                f"rollback incomplete: undo failed for {', '.join(i.step for i in report.failed)}; "
                "a human must look (kubernaut history show <run>)"
            )
        return result


def outcome_of(
    state: RunState, rollback_state: str, journal: list[str] | None, *, not_needed: bool = False
) -> str:
    """The run's outcome from its task states and, when known, its undo-journal statuses.
    ``not_needed``: the run's alert had resolved before its first change (operators.resolved)."""
    if not state.failed and not state.rejected:
        return "not_needed" if not_needed else "success"
    undo = journal or []
    if rollback_state not in ("success", "skipped") or "failed" in undo:
        return "rollback_failed"
    if state.failed:
        if rollback_state != "success":
            return "rollback_failed"
        return "partially_rolled_back" if "not_restorable" in undo else "rolled_back"
    return "declined"


class KubernautFinalizeOperator(KubernautOperator):
    """Record how the run ended; start its effectiveness assessment (a run of the assessment
    DAG, ``kubernaut.operators.assess``; ``assessment``: the template's ``effectiveness``);
    fail the run unless it is a success."""

    def __init__(self, *, template: str, assessment: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.template = template
        self.assessment = dict(assessment or {})

    def execute(self, context: Any) -> dict[str, Any]:
        state = RunState.read(context, also=[ROLLBACK_TASK])
        from kubernaut.operators.resolved import recorded as resolved_outcome
        from kubernaut.operators.run_context import RunContext

        rollback_state = state.others[ROLLBACK_TASK]
        run = RunContext.open(context, self.template, dry_run=False)
        journal = None
        if run.history is not None and run.run_id is not None:
            journal = [e.undo_status for e in run.history.journal(run.run_id)]
        resolved = resolved_outcome(run)
        status = outcome_of(state, rollback_state, journal, not_needed=resolved is not None)
        reasons = [f"{t} {state.states[t]}" for t in state.failed] + [f"{g} rejected" for g in state.rejected]
        detail = ", ".join(reasons)
        if status == "not_needed" and resolved is not None:
            detail = str(resolved["detail"].get("reason", "the alert resolved before the first change"))
        if status in ("partially_rolled_back", "rollback_failed"):
            detail += "; not every change could be undone: a human must look"
        if run.history is not None and run.run_id is not None:
            run.history.finish_run(run.run_id, status, detail)
            run.history.record_outcome(
                run.run_id,
                "run",
                status,
                {"steps": state.states, "rollback": rollback_state, "rejected": state.rejected},
            )
        # A person must look: the configured notifiers, from here where the outcome is
        # decided (once per run and outcome, retry safe; never raises).
        from kubernaut.notifiers.escalation import escalate_run

        escalate_run(context, run, self.template, status, detail, self.log)
        # The run ends here; its assessment waits in a run of its own (once, retry safe).
        from kubernaut.operators.assess import request_assessment

        request_assessment(context, run, self.template, status, self.assessment, logger=self.log)
        if status == "rolled_back" and not run.conf.get("dry_run"):
            # The next remedy for the same alert occurrence, once, or a person (docs/choice.md).
            from kubernaut.intake.fallback import after_run

            after_run(run, context["dag_run"].run_id, self.template, status, logger=self.log)
        if status not in GREEN_OUTCOMES:
            raise AirflowFailException(f"remediation {status}: {detail}")
        return {"status": status, "steps": state.states}
