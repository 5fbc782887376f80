"""The visible rollback path of every remediation DAG, and the failure callback.

``rollback`` (trigger rule all_done, after the last steps) undoes the journaled changes
when any step failed; ``finalize`` (all_done) records the outcome and fails the run if a
step failed. The callback on each step is a fast path only: it declines while retries
remain, and the journal makes a second or late call a no-op (apache/airflow #65400, #63374).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from kubernaut.actions.base import ActionContext
from kubernaut.actions.registry import registry
from kubernaut.operators.run_context import RunContext
from kubernaut.operators.runner import StepSpec, render_context
from kubernaut.rollback import RollbackReport, rollback_run

ROLLBACK_TASK, FINALIZE_TASK = "rollback", "finalize"
FAILED_STATES = ("failed",)


def _step_specs(dag: Any) -> dict[str, StepSpec]:
    from kubernaut.operators.step import KubernautStepOperator

    return {t.task_id: t.spec for t in dag.tasks if isinstance(t, KubernautStepOperator)}


def _run_rollback(run: RunContext, specs: Mapping[str, StepSpec], log: Any) -> RollbackReport | None:
    if run.history is None or run.run_id is None:
        log.error("kubernaut: cannot roll back: no history database to read the undo journal from")
        return None
    any_spec = next(iter(specs.values()), None)
    conn_id = any_spec.kube_conn_id if any_spec else "kubernetes_default"

    def make_context() -> ActionContext:
        return ActionContext(timeout=300.0, kube_conn_id=conn_id, logger=log, _config=run.config)

    rollbacks = {name: spec.rollback or {"mode": "undo"} for name, spec in specs.items()}
    return rollback_run(
        run.history, run.run_id, rollbacks, make_context, render_context(run.conf, {}, {}), log
    )


def rollback_on_failure(context: Any) -> None:
    """on_failure_callback of every step: roll back now if this was the step's last attempt."""
    ti, task = context["ti"], context["task"]
    if ti.try_number <= (task.retries or 0):
        task.log.info("kubernaut: step %s will be retried; no rollback yet", task.task_id)
        return
    try:
        run = RunContext.open(context, task.spec.template, dry_run=False)
        _run_rollback(run, _step_specs(context["dag"]), task.log)
    except Exception as exc:  # the rollback task is the guarantee; never mask the step's error
        task.log.error("kubernaut: rollback from failure callback failed: %s", exc)


def _states(context: Any, task_ids: list[str]) -> dict[str, str]:
    ti, dag_run = context["ti"], context["dag_run"]
    found = ti.get_task_states(dag_id=dag_run.dag_id, task_ids=task_ids, run_ids=[dag_run.run_id])
    states = found.get(dag_run.run_id, found)
    return {task_id: str(states.get(task_id)) for task_id in task_ids}


class KubernautRollbackOperator(BaseOperator):
    """Undo every journaled change in reverse completion order when any step failed."""

    ui_color = "#ffd6d6"

    def __init__(self, *, template: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.template = template

    def execute(self, context: Any) -> dict[str, Any]:
        specs = _step_specs(context["dag"])
        failed = [t for t, s in _states(context, list(specs)).items() if s in FAILED_STATES]
        if not failed:
            raise AirflowSkipException("no step failed: nothing to roll back")
        self.log.info("kubernaut: steps failed: %s; rolling back", ", ".join(failed))
        run = RunContext.open(context, self.template, dry_run=False)
        report = _run_rollback(run, specs, self.log)
        if report is None:
            raise AirflowFailException(
                "rollback impossible: the history database (undo journal) is unavailable"
            )
        result = {"failed_steps": failed, **report.to_dict()}
        if report.failed:
            self._escalate(context, run, result)
            raise AirflowFailException(
                f"rollback incomplete: undo failed for {', '.join(i.step for i in report.failed)}; "
                "a human must look (kubernaut history show <run>)"
            )
        return result

    def _escalate(self, context: Any, run: RunContext, result: Mapping[str, Any]) -> None:
        if run.history is not None and run.run_id is not None:
            run.history.record_outcome(run.run_id, "rollback", "escalated", dict(result))
        if not run.config.notify_conn_id:
            return
        try:
            notify = registry.get("monitoring", "notify")
            message = f"kubernaut: rollback of {context['dag_run'].run_id} incomplete: {result['failed']}"
            params = notify.Params.model_validate(
                {
                    "title": "kubernaut: rollback incomplete, a human must look",
                    "message": message,
                    "severity": "critical",
                    "fields": {"dag_id": context["dag_run"].dag_id, **dict(result)},
                }
            )
            notify().execute(ActionContext(logger=self.log, _config=run.config), params)
        except Exception as exc:
            self.log.error("kubernaut: escalation notification failed: %s", exc)


class KubernautFinalizeOperator(BaseOperator):
    """Record how the run ended; fail the run when a step failed (even if rolled back)."""

    ui_color = "#eeeeee"

    def __init__(self, *, template: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.template = template

    def execute(self, context: Any) -> dict[str, Any]:
        specs = _step_specs(context["dag"])
        states = _states(context, [*specs, ROLLBACK_TASK])
        rollback_state = states.pop(ROLLBACK_TASK)
        failed = [t for t, s in states.items() if s in FAILED_STATES]
        if not failed:
            status = "success"
        elif rollback_state == "success":
            status = "rolled_back"
        else:
            status = "rollback_failed"
        run = RunContext.open(context, self.template, dry_run=False)
        detail = f"failed steps: {', '.join(failed)}" if failed else ""
        if run.history is not None and run.run_id is not None:
            run.history.finish_run(run.run_id, status, detail)
            run.history.record_outcome(
                run.run_id, "run", status, {"steps": states, "rollback": rollback_state}
            )
        if failed:
            raise AirflowFailException(f"remediation failed ({status}): {detail}")
        return {"status": status, "steps": states}
