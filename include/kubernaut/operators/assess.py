"""The delayed effectiveness assessment: one ``kubernaut_assessment`` DAG run per remediation run.

A remediation run ends at its ``finalize`` task, which decides its state (failed unless it is
a success) and asks for the assessment (``request_assessment``): it creates a run of the
``kubernaut_assessment`` DAG through the task's Execution API (as the fallback chain does,
``kubernaut.intake.fallback.TaskAirflow``), with a run id derived from the remediation's DAG id
and run id, so a retried ``finalize`` finds the run it created and never makes a second one.
The remediation run is then over: it no longer counts against its template's
``max_active_runs`` while the assessment waits (``after`` + ``window``, 40 minutes by default).
The assessment run waits ``queued`` until it is due (``run_after``, ``due_at``): the scheduler
examines only runs that are due, so waiting costs nothing.

The assessment run's one task, ``assess_effectiveness`` (``KubernautAssessOperator``), reads
the remediation from its conf (``remediation``: DAG id, run id, template, history id, start and
end, outcome; the alert; the cluster; the template's ``effectiveness``), waits in the
triggerer until the remediation's end + ``after`` + ``window`` if started before, scores what it gathered
(``kubernaut.assessment``) and stores it in the history under the
*remediation's* run. Both runs name each other: the assessment run's note and conf name the
remediation run; the remediation's history has an outcome of kind ``assessment_run`` naming the
assessment run, and (once done) its assessment. An ``ineffective`` verdict of a run that was
not a dry run hands the remediation's alert occurrence on to the next remedy, once
(``kubernaut.intake.fallback.after_run``, docs/choice.md). The task fails only when it cannot
store its result; ``ineffective`` is data, not an error. The scheduler starts it in the
triggerer (``start_from_trigger``, ``kubernaut.triggers.assessment.AssessmentRunTrigger``),
where it also ends: no worker process at all, unless an ineffective verdict hands on.
"""

from __future__ import annotations

import datetime
import hashlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import StartTriggerArgs

from kubernaut.assessment.names import ASSESSMENT_DAG_ID as ASSESSMENT_DAG_ID  # re-exported
from kubernaut.assessment.names import CONF_KEY as CONF_KEY
from kubernaut.assessment.names import FAILED, RUN_TRIGGER, START_IN_WORKER, STORED
from kubernaut.operators.base import KubernautOperator

if TYPE_CHECKING:  # imported when the task runs (the DAG processor imports this module)
    from kubernaut.operators.run_context import RunContext

ASSESS_TASK = "assess_effectiveness"
RUN_OUTCOME_KIND = "assessment_run"  # the remediation's history: which assessment run was created
RUN_ID_PREFIX = "assess__"
MAX_RUN_ID = 250  # Airflow's dag_run.run_id column


def assessment_run_id(dag_id: str, run_id: str) -> str:
    """The assessment run of remediation run ``run_id`` of ``dag_id``: always the same id, so
    creating it twice (a retried ``finalize``) finds the first. Too long for Airflow's column:
    a digest of both instead (still one id per remediation run)."""
    plain = f"{RUN_ID_PREFIX}{dag_id}__{run_id}"
    if len(plain) <= MAX_RUN_ID:
        return plain
    digest = hashlib.sha256(f"{dag_id}\0{run_id}".encode()).hexdigest()
    return f"{RUN_ID_PREFIX}{dag_id[:150]}__{digest}"


# -- from the remediation run's finalize -------------------------------------------------------
def assessment_conf(
    context: Any, run: RunContext, template: str, outcome: str, settings: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What the assessment run needs to know about the remediation run (its conf)."""
    dag_run = context["dag_run"]
    start = getattr(dag_run, "start_date", None)
    now = time.time()
    return {
        CONF_KEY: {
            "dag_id": dag_run.dag_id,
            "run_id": dag_run.run_id,
            "template": template,
            "history_id": run.run_id,
            "started": start.timestamp() if start is not None else now,
            "ended": now,
            "outcome": outcome,
            "dry_run": bool(run.conf.get("dry_run")),
        },
        "alert": _raw_alert(run.conf),
        "cluster": {"name": run.cluster.name, "conn_id": run.cluster.conn_id},
        "effectiveness": dict(settings or {}),
    }


def _raw_alert(conf: Mapping[str, Any]) -> Any:
    """The alert as the remediation received it: ``conf["alert"]``, or the conf itself when the
    run was triggered with the bare alert (as ``kubernaut.alert.alert_context`` reads it)."""
    if "alert" in conf:
        return conf["alert"]
    return {k: conf[k] for k in ALERT_FIELDS if k in conf} or None


ALERT_FIELDS = ("status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint")


def request_assessment(
    context: Any,
    run: RunContext,
    template: str,
    outcome: str,
    settings: Mapping[str, Any] | None,
    *,
    airflow: Any = None,
    logger: Any = None,
) -> dict[str, Any]:
    """Create the remediation run's assessment run (once); recorded in the remediation's
    history. Never raises: the remediation's own outcome stands whatever happens here.
    ``airflow``: what sends ``TriggerDagRun`` (by default the task's Execution API)."""
    from kubernaut.intake.fallback import TaskAirflow

    dag_run = context["dag_run"]
    run_id = assessment_run_id(dag_run.dag_id, dag_run.run_id)
    conf = assessment_conf(context, run, template, outcome, settings)
    note = f"Assessment of remediation run {dag_run.run_id} of {dag_run.dag_id} ({template}, {outcome})"
    found: dict[str, Any] = {"dag_id": ASSESSMENT_DAG_ID, "run_id": run_id}
    due = due_at(conf, run)
    if due is not None:
        found["run_after"] = due.isoformat()
    try:
        found["created"] = _trigger(airflow or TaskAirflow(), run_id, conf, note, due)
        found["status"] = "requested"
    except Exception as exc:
        found["status"], found["error"] = "not_requested", f"{type(exc).__name__}: {exc}"
    if logger is not None:
        if found["status"] == "requested":
            logger.info(
                "kubernaut: effectiveness assessment: run %s of %s (%s)",
                run_id,
                ASSESSMENT_DAG_ID,
                "created" if found["created"] else "already there",
            )
        else:
            logger.error("kubernaut: the effectiveness assessment could not be requested: %s", found["error"])
    if run.history is not None and run.run_id is not None:
        try:  # once per status (a retried finalize records nothing new)
            if run.history.outcome_of_kind(run.run_id, RUN_OUTCOME_KIND, found["status"]) is None:
                run.history.record_outcome(run.run_id, RUN_OUTCOME_KIND, found["status"], found)
        except Exception as exc:
            if logger is not None:
                logger.error("kubernaut: could not record the assessment run: %s", exc)
    return found


def due_at(conf: Mapping[str, Any], run: RunContext) -> datetime.datetime | None:
    """When the assessment run starts (its ``run_after``): the remediation's end + ``after`` +
    ``window``. Until then it waits ``queued``, which costs nothing: the scheduler examines
    only runs that are due, while a running one whose task waits deferred is examined again and
    again among every running run (20 per scheduler loop), slowing the remediations' own.
    None (now): a run with no alert to assess has its verdict at once."""
    from kubernaut.assessment.run import delays

    if not (run.alert.get("labels") or {}).get("alertname"):
        return None
    after, window = delays(conf.get("effectiveness"), run.config)
    due = float(conf[CONF_KEY]["ended"]) + after + window
    return datetime.datetime.fromtimestamp(due, datetime.UTC)


def _trigger(
    airflow: Any,
    run_id: str,
    conf: Mapping[str, Any],
    note: str,
    run_after: datetime.datetime | None = None,
) -> bool:
    """True: created; False: it existed (a retried finalize). Raises when Airflow refuses."""
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time.comms import ErrorResponse, TriggerDagRun

    answer = airflow._send(
        TriggerDagRun(
            dag_id=ASSESSMENT_DAG_ID, run_id=run_id, conf=dict(conf), note=note, run_after=run_after
        )
    )
    if isinstance(answer, ErrorResponse):
        if answer.error == ErrorType.DAGRUN_ALREADY_EXISTS:
            return False
        raise RuntimeError(f"run {run_id} of {ASSESSMENT_DAG_ID}: {answer.error.value} {answer.detail}")
    return True


# -- the assessment run's task ---------------------------------------------------------------------
def remediation_context(context: Any) -> RunContext:
    """The remediation run this assessment run assesses, as its tasks saw it (its alert, its
    cluster, its history row). Raises ``AirflowFailException`` (no retry) on a conf that names
    none, and lets a history error through (retried: the result must be stored)."""
    from airflow.sdk.exceptions import AirflowFailException

    from kubernaut.assessment.run import AssessmentInputError, remediation_of
    from kubernaut.operators.run_context import RunContext

    try:
        rem = remediation_of(context["dag_run"].conf or {})
    except AssessmentInputError as exc:
        raise AirflowFailException(str(exc)) from exc
    return RunContext(
        conf=rem.conf,
        alert=rem.alert,
        config=rem.config,
        history=rem.history,
        run_id=rem.run_id,
        cluster=rem.cluster,
    )


class KubernautAssessOperator(KubernautOperator):
    """The one task of the ``kubernaut_assessment`` DAG: assesses the remediation run its
    run's conf names (``conf.remediation``), after that run's ``after`` + ``window``.

    The scheduler starts it in the triggerer (``start_from_trigger``): reading the run, the
    wait, the evidence and storing the verdict all happen there
    (``kubernaut.triggers.assessment.AssessmentRunTrigger``), and the task ends there, so it
    takes no worker slot at all. A worker runs it only to hand an ineffective run's alert on to
    the next remedy (which needs the task's Execution API), or from ``execute`` (``dag.test``;
    a triggerer that had no run to read), which defers to the same trigger with the conf."""

    ui_color = "#e8f4ea"
    start_from_trigger = True
    start_trigger_args = StartTriggerArgs(
        trigger_cls=RUN_TRIGGER,
        trigger_kwargs={"end": True},
        next_method="execute_complete",
        next_kwargs=None,
        timeout=None,  # the trigger's own: the run's end + after + window, from the run's conf
    )

    def execute(self, context: Any) -> dict[str, Any]:
        from kubernaut.triggers.assessment import AssessmentRunTrigger

        conf = dict(context["dag_run"].conf or {})
        self.defer(trigger=AssessmentRunTrigger(conf=conf), method_name="execute_complete")
        raise AssertionError("unreachable: defer raises")  # pragma: no cover

    def execute_complete(self, context: Any, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        event = event or {}
        status = event.get("status")
        if status == START_IN_WORKER:
            self.log.info("kubernaut: %s", event.get("reason", ""))
            return self.execute(context)
        if status == FAILED:  # no retry: the conf and the configuration will not change
            raise AirflowFailException(str(event.get("error", "")))
        run = remediation_context(context)
        if status == STORED:
            summary = dict(event.get("summary") or {})
            return self._hand_on(context, run, summary) if event.get("hand_on") else summary
        # "done": a task deferred to AssessmentTrigger before AssessmentRunTrigger existed.
        evidence = dict(event.get("evidence") or {})
        return self._finish(context, run, dict(event.get("request") or {}), evidence, "")

    def _finish(
        self, context: Any, run: RunContext, request: Mapping[str, Any], evidence: dict[str, Any], skip: str
    ) -> dict[str, Any]:
        from kubernaut.assessment.run import RemediationRun, store

        assert run.history is not None
        assessed = RemediationRun(run.conf, run.alert, run.config, run.history, run.run_id, run.cluster)
        summary, hand_on = store(context["dag_run"].conf or {}, assessed, request, evidence, skip, self.log)
        return self._hand_on(context, run, summary) if hand_on else summary

    def _hand_on(self, context: Any, run: RunContext, summary: dict[str, Any]) -> dict[str, Any]:
        """An ineffective remediation (not a dry run): the next remedy for its alert occurrence,
        once, or a person (docs/choice.md); after_run never raises and hands on at most once
        per run."""
        from kubernaut.intake.fallback import after_run

        rem: Mapping[str, Any] = (context["dag_run"].conf or {})[CONF_KEY]
        handed = after_run(
            run, str(rem["run_id"]), str(rem.get("template", "")), "assessed ineffective", logger=self.log
        )
        return {**summary, "fallback": handed.as_dict()}
