"""The assessment of one remediation run, wherever it runs: the triggerer (the usual way, the task
started there by the scheduler: ``kubernaut.triggers.assessment.AssessmentRunTrigger``) or a
worker (``kubernaut.operators.assess.KubernautAssessOperator.execute``, which defers to
``AssessmentTrigger``). Both read the run the same way, ask the same request of the
services, and store the verdict the same way.

Blocking (the configuration Variable, PostgreSQL, connection lookups): a trigger calls these
in a thread. Nothing here imports the operators or the intake: the triggerer runs it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernaut.alert import alert_context
from kubernaut.assessment.names import ASSESSMENT_DAG_ID, CONF_KEY
from kubernaut.clusters import Cluster
from kubernaut.config import ConfigError, KubernautConfig, load_config
from kubernaut.history import History

log = logging.getLogger(__name__)


class AssessmentInputError(ValueError):
    """The assessment run cannot be assessed at all (no remediation named, a configuration
    that cannot be read): retrying will not help."""


@dataclass
class RemediationRun:
    """The remediation run being assessed, as its tasks saw it."""

    conf: Mapping[str, Any]  # {"alert": ..., "dry_run": ...}: the remediation's, not the assessment's
    alert: dict[str, Any]
    config: KubernautConfig
    history: History
    run_id: int | None  # its history row
    cluster: Cluster

    @property
    def kube_conn_id(self) -> str:
        return self.cluster.conn_id


def remediation_of(conf: Mapping[str, Any]) -> RemediationRun:
    """The remediation run the assessment run's ``conf`` names. ``AssessmentInputError`` when it
    names none or the configuration cannot be read; a history error goes through (a retry may
    store the result)."""
    rem = conf.get(CONF_KEY)
    if not isinstance(rem, Mapping) or not rem.get("dag_id") or not rem.get("run_id"):
        raise AssessmentInputError(
            f"{ASSESSMENT_DAG_ID}: conf.{CONF_KEY} must name the remediation run "
            '({"dag_id": ..., "run_id": ...}); runs are created by a remediation\'s finalize task'
        )
    try:
        config = load_config()
    except ConfigError as exc:
        raise AssessmentInputError(f"kubernaut configuration: {exc}") from exc
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
    return RemediationRun(
        conf=remediation_conf,
        alert=alert_context(remediation_conf),
        config=config,
        history=history,
        run_id=history_id,
        cluster=cluster,
    )


def delays(settings: Mapping[str, Any] | None, config: KubernautConfig) -> tuple[float, float]:
    """``(after, window)`` in seconds: the template's ``effectiveness``, else the configuration's."""
    cfg = config.effectiveness
    after = (settings or {}).get("after")
    window = (settings or {}).get("window")
    return (
        float(after) if after is not None else cfg.after.total_seconds(),
        float(window) if window is not None else cfg.window.total_seconds(),
    )


def build_request(conf: Mapping[str, Any], run: RemediationRun) -> dict[str, Any]:
    """What the services are asked, and when (``kubernaut.triggers.assessment.AssessmentTrigger``)."""
    from kubernaut.assessment.probes import drift_probes

    rem: Mapping[str, Any] = conf[CONF_KEY]
    settings: Mapping[str, Any] = conf.get("effectiveness") or {}
    after, window = delays(settings, run.config)
    ended = float(rem.get("ended") or time.time())
    probes: list[dict[str, Any]] = []
    outcome = str(rem.get("outcome") or "")
    if run.run_id is not None:
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


def connection_missing(conn_id: str) -> str | None:
    """Why the assessment cannot ask this service at all (no such Airflow connection), or None."""
    from kubernaut.services.connection import endpoint_from_connection

    try:
        endpoint_from_connection(conn_id)
    except Exception as exc:
        return str(exc)
    return None


def known_now(request: Mapping[str, Any]) -> tuple[dict[str, Any], str] | None:
    """``(evidence, skip reason)`` when the verdict is known without waiting (no alert to
    assess, no connection to ask a service through), else None."""
    if not request["alert_labels"].get("alertname"):
        return {}, "the run has no alert to assess"
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
        return {service: {"error": problem} for service, problem in missing.items()}, ""
    return None


def store(
    conf: Mapping[str, Any],
    run: RemediationRun,
    request: Mapping[str, Any],
    evidence: Mapping[str, Any],
    skip: str,
    logger: Any = log,
) -> tuple[dict[str, Any], bool]:
    """Score the evidence and store the verdict with the remediation run (idempotent: run again,
    it replaces the assessment and records its outcome once). The summary the task returns, and
    whether the remediation's alert occurrence goes on to the next remedy (ineffective, not a
    dry run)."""
    from kubernaut.assessment import Assessment, assess

    if skip:
        result = Assessment("unknown", None, [skip])
    else:
        result = assess(evidence, threshold=run.config.effectiveness.threshold)
    rem: Mapping[str, Any] = conf[CONF_KEY]
    summary = {
        **result.to_dict(),
        "outcome": request.get("outcome", ""),
        "remediation": {"dag_id": rem["dag_id"], "run_id": rem["run_id"]},
    }
    logger.info(
        "kubernaut: assessment %s (score %s): %s",
        result.verdict,
        "-" if result.score is None else f"{result.score:.2f}",
        "; ".join(result.reasons),
    )
    if run.run_id is None:
        logger.warning("kubernaut: remediation run %s has no history row: not stored", rem["run_id"])
        return summary, False
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
    return summary, result.verdict == "ineffective" and not dry_run(run)


def dry_run(run: RemediationRun) -> bool:
    if run.conf.get("dry_run"):
        return True
    if run.run_id is not None:
        row = run.history._one("SELECT dry_run FROM kubernaut_runs WHERE id = %s", (run.run_id,))
        return bool(row and row.get("dry_run"))
    return False
