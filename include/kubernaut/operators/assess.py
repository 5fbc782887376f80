"""The delayed effectiveness assessment: one ``kubernaut_assessment`` DAG run per remediation run.

A remediation run ends at its ``finalize`` task, which decides its state (failed unless it is
a success) and asks for the assessment (``request_assessment``): it creates a run of the
``kubernaut_assessment`` DAG through the task's Execution API (as the fallback chain does,
``kubernaut.intake.fallback.TaskAirflow``), with a run id derived from the remediation's DAG id
and run id, so a retried ``finalize`` finds the run it created and never makes a second one.
The remediation run is then over: it no longer counts against its template's
``max_active_runs`` while the assessment waits (``after`` + ``window``, 40 minutes by default).

The assessment run's one task, ``assess_effectiveness`` (``KubernautAssessOperator``), reads
the remediation from its conf (``remediation``: DAG id, run id, template, history id, start and
end, outcome; the alert; the cluster; the template's ``effectiveness``), defers to the
triggerer (``AssessmentTrigger``) until the remediation's end + ``after`` + ``window``, scores
what the trigger gathered (``kubernaut.assessment``) and stores it in the history under the
*remediation's* run. Both runs name each other: the assessment run's note and conf name the
remediation run; the remediation's history has an outcome of kind ``assessment_run`` naming the
assessment run, and (once done) its assessment. An ``ineffective`` verdict of a run that was
not a dry run hands the remediation's alert occurrence on to the next remedy, once
(``kubernaut.intake.fallback.after_run``, docs/choice.md). The task fails only when it cannot
store its result; ``ineffective`` is data, not an error.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kubernaut.operators.base import KubernautOperator

if TYPE_CHECKING:  # imported when the task runs (the DAG processor imports this module)
    from kubernaut.operators.run_context import RunContext

ASSESS_TASK = "assess_effectiveness"
ASSESSMENT_DAG_ID = "kubernaut_assessment"
CONF_KEY = "remediation"  # conf["remediation"]: which run is assessed
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


def connection_missing(conn_id: str) -> str | None:
    """Why the assessment cannot ask this service at all (no such Airflow connection), or None."""
    from kubernaut.services.connection import endpoint_from_connection

    try:
        endpoint_from_connection(conn_id)
    except Exception as exc:
        return str(exc)
    return None


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
    try:
        found["created"] = _trigger(airflow or TaskAirflow(), run_id, conf, note)
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


def _trigger(airflow: Any, run_id: str, conf: Mapping[str, Any], note: str) -> bool:
    """True: created; False: it existed (a retried finalize). Raises when Airflow refuses."""
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time.comms import ErrorResponse, TriggerDagRun

    answer = airflow._send(TriggerDagRun(dag_id=ASSESSMENT_DAG_ID, run_id=run_id, conf=dict(conf), note=note))
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

    from kubernaut.alert import alert_context
    from kubernaut.clusters import Cluster
    from kubernaut.config import ConfigError, load_config
    from kubernaut.history import History
    from kubernaut.operators.run_context import RunContext

    conf: Mapping[str, Any] = context["dag_run"].conf or {}
    rem = conf.get(CONF_KEY)
    if not isinstance(rem, Mapping) or not rem.get("dag_id") or not rem.get("run_id"):
        raise AirflowFailException(
            f"{ASSESSMENT_DAG_ID}: conf.{CONF_KEY} must name the remediation run "
            '({"dag_id": ..., "run_id": ...}); runs are created by a remediation\'s finalize task'
        )
    try:
        config = load_config()
    except ConfigError as exc:
        raise AirflowFailException(f"kubernaut configuration: {exc}") from exc
    carried = conf.get("cluster") if isinstance(conf.get("cluster"), Mapping) else {}
    assert isinstance(carried, Mapping)
    cluster = Cluster(str(carried.get("name") or ""), str(carried.get("conn_id") or "kubernetes_default"))
    history = History(config.history_conn_id)
    history_id = rem.get("history_id")
    if not isinstance(history_id, int):
        row = history._one(
            "SELECT id FROM kubernaut_runs WHERE dag_id = %s AND dag_run_id = %s",
            (str(rem["dag_id"]), str(rem["run_id"])),
        )
        history_id = int(row["id"]) if row else None
    remediation_conf = {"alert": conf.get("alert"), "dry_run": bool(rem.get("dry_run"))}
    return RunContext(
        conf=remediation_conf,
        alert=alert_context(remediation_conf),
        config=config,
        history=history,
        run_id=history_id,
        cluster=cluster,
    )


class KubernautAssessOperator(KubernautOperator):
    """The one task of the ``kubernaut_assessment`` DAG: assesses the remediation run its
    run's conf names (``conf.remediation``), after that run's ``after`` + ``window``."""

    ui_color = "#e8f4ea"

    def request(self, conf: Mapping[str, Any], run: RunContext) -> dict[str, Any]:
        from kubernaut.assessment.probes import drift_probes

        rem: Mapping[str, Any] = conf[CONF_KEY]
        settings: Mapping[str, Any] = conf.get("effectiveness") or {}
        cfg = run.config.effectiveness
        after = settings.get("after")
        window = settings.get("window")
        after = float(after) if after is not None else cfg.after.total_seconds()
        window = float(window) if window is not None else cfg.window.total_seconds()
        ended = float(rem.get("ended") or time.time())
        probes: list[dict[str, Any]] = []
        outcome = str(rem.get("outcome") or "")
        if run.history is not None and run.run_id is not None:
            row = run.history.run(run.run_id) or {}
            outcome = str(row.get("status") or outcome)
            if not row.get("dry_run"):
                outputs = {
                    s["step"]: (s.get("result") or {}).get("output") or {}
                    for s in row.get("steps", [])
                    if isinstance(s.get("result"), Mapping)
                }
                probes = drift_probes(row.get("undo", []), outputs)
        return {
            "alert_labels": dict(run.alert.get("labels") or {}),
            "target": {
                "kind": run.alert.get("kind", ""),
                "namespace": run.alert.get("namespace", ""),
                "name": run.alert.get("resource", ""),
            },
            "started": float(rem.get("started") or ended),
            "ended": ended,
            "after_at": ended + after,
            "due": ended + after + window,
            "after": after,
            "window": window,
            "outcome": outcome,
            "metrics": list(settings.get("metrics") or []),
            "probes": probes,
            "prometheus_conn_id": run.config.prometheus_conn_id,
            "alertmanager_conn_id": run.config.alertmanager_conn_id,
            "kube_conn_id": run.kube_conn_id,
        }

    def execute(self, context: Any) -> dict[str, Any]:
        from kubernaut.triggers.assessment import AssessmentTrigger

        run = remediation_context(context)
        conf = context["dag_run"].conf or {}
        request = self.request(conf, run)
        rem = conf[CONF_KEY]
        self.log.info(
            "kubernaut: assessing remediation run %s of %s (%s)",
            rem["run_id"],
            rem["dag_id"],
            rem.get("template", "?"),
        )
        if not request["alert_labels"].get("alertname"):
            return self._finish(context, run, request, {}, "the run has no alert to assess")
        missing = {
            service: problem
            for service, conn_id in (
                ("alertmanager", request["alertmanager_conn_id"]),
                ("prometheus", request["prometheus_conn_id"]),
            )
            if (problem := connection_missing(conn_id))
        }
        if missing:
            # Waiting would not help: with no way to ask, the verdict is unknown, now.
            evidence = {service: {"error": problem} for service, problem in missing.items()}
            return self._finish(context, run, request, evidence, "")
        self.log.info(
            "kubernaut: assessing in %.0fs (after %.0fs, then a %.0fs window), waiting in the triggerer",
            max(0.0, request["due"] - time.time()),
            request["after"],
            request["window"],
        )
        self.defer(
            trigger=AssessmentTrigger(request),
            method_name="execute_complete",
            timeout=timedelta(seconds=request["after"] + request["window"] + 3600),
        )
        raise AssertionError("unreachable: defer raises")  # pragma: no cover

    def execute_complete(self, context: Any, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        run = remediation_context(context)
        event = event or {}
        evidence = dict(event.get("evidence") or {})
        return self._finish(context, run, dict(event.get("request") or {}), evidence, "")

    def _finish(
        self, context: Any, run: RunContext, request: Mapping[str, Any], evidence: dict[str, Any], skip: str
    ) -> dict[str, Any]:
        from kubernaut.assessment import Assessment, assess

        if skip:
            result = Assessment("unknown", None, [skip])
        else:
            result = assess(evidence, threshold=run.config.effectiveness.threshold)
        rem: Mapping[str, Any] = (context["dag_run"].conf or {})[CONF_KEY]
        summary = {
            **result.to_dict(),
            "outcome": request.get("outcome", ""),
            "remediation": {"dag_id": rem["dag_id"], "run_id": rem["run_id"]},
        }
        self.log.info(
            "kubernaut: assessment %s (score %s): %s",
            result.verdict,
            "-" if result.score is None else f"{result.score:.2f}",
            "; ".join(result.reasons),
        )
        if run.history is None or run.run_id is None:
            self.log.warning("kubernaut: remediation run %s has no history row: not stored", rem["run_id"])
            return summary
        run.history.record_assessment(
            run.run_id,
            verdict=result.verdict,
            score=result.score,
            outcome=str(request.get("outcome", "")),
            reasons=result.reasons,
            components=summary["components"],
            after_s=float(request.get("after", 0.0)),
            window_s=float(request.get("window", 0.0)),
        )
        if run.history.outcome_of_kind(run.run_id, "assessment", result.verdict) is None:
            run.history.record_outcome(
                run.run_id, "assessment", result.verdict, {"score": result.score, "reasons": result.reasons}
            )
        if result.verdict == "ineffective" and not self._dry_run(run):
            # The next remedy for the remediation's alert occurrence, once, or a person
            # (docs/choice.md); after_run never raises and hands on at most once per run.
            from kubernaut.intake.fallback import after_run

            handed = after_run(
                run, str(rem["run_id"]), str(rem.get("template", "")), "assessed ineffective", logger=self.log
            )
            summary["fallback"] = handed.as_dict()
        return summary

    @staticmethod
    def _dry_run(run: RunContext) -> bool:
        if run.conf.get("dry_run"):
            return True
        if run.history is not None and run.run_id is not None:
            row = run.history._one("SELECT dry_run FROM kubernaut_runs WHERE id = %s", (run.run_id,))
            return bool(row and row.get("dry_run"))
        return False
