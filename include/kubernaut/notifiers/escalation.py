"""Escalations: a person must look. Sent through the Airflow notifiers the configuration names
(``escalation:``, kubernaut.config.EscalationConfig), from the code that decides the outcome:
the run's ``finalize`` task (rollback_failed, partially_rolled_back, declined) and the intake
(blocked). Never through a task's on_failure_callback alone (apache/airflow #65400, #63374).

Once per subject (``dag_id/dag_run_id`` of the run, or of the alert occurrence a blocked
decision answered) and kind: the ``kubernaut_escalations`` row is claimed before sending, so
a retried task or a re-delivered alert sends nothing again; a failed delivery is recorded and
tried again by the next attempt (a task retry, the alert's next delivery), at most
``MAX_ATTEMPTS`` times. Delivery never raises into its caller, and what is recorded or logged
about a failure has URLs cut to their host and known secrets masked.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from kubernaut.config import EscalationConfig

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
STALE_SENDING = "10 minutes"  # a claim older than this was abandoned (process killed mid-send)
UI_PREFIX = "/kubernaut/ui"
OUTCOME_KIND = "escalation"  # the run's outcome row: sent | failed
TITLES = {
    "rollback_failed": "rollback failed: changes remain that could not be undone",
    "partially_rolled_back": "partially rolled back: some changes cannot be undone",
    "declined": "a person declined the remediation",
    "blocked": "remediation blocked: repeated failed or ineffective runs on this target",
}


@dataclass(frozen=True)
class Escalation:
    outcome: str  # rollback_failed | partially_rolled_back | declined | blocked
    subject: str  # dag_id/dag_run_id: once per subject and outcome
    alert_name: str
    target: dict[str, str]  # kind, namespace, name
    template: str
    reason: str
    url: str  # the remediation page (a run) or the decisions page (an intake decision)
    dag_id: str = ""
    dag_run_id: str = ""
    run_id: int | None = None  # the history's id of the run, when there is one
    cluster: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def target_text(self) -> str:
        t = self.target
        where = f"{t.get('namespace', '')}/{t.get('name', '')}".strip("/")
        text = f"{t.get('kind', '')} {where}".strip() or "-"
        return f"{self.cluster}:{text}" if self.cluster else text

    def payload(self) -> dict[str, Any]:
        """What the notifier sends (the webhook notifier: as JSON; others: as ``escalation``
        in the context their templated fields are rendered with). ``text`` is what Slack-style
        incoming webhooks show."""
        title = f"kubernaut: {TITLES.get(self.outcome, self.outcome)}"
        text = (
            f"{title}: alert {self.alert_name or '-'} on {self.target_text} (template "
            f"{self.template or '-'}): {self.reason}. {self.url}"
        )
        body = {k: v for k, v in asdict(self).items() if k != "extra"}
        return {
            "source": "kubernaut",
            "kind": "escalation",
            "title": title,
            "text": text,
            "severity": "critical",
            **body,
            **self.extra,
            "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }


# -- links --------------------------------------------------------------------------------------
def ui_base() -> str:
    """Airflow's ``[api] base_url`` (where the UI and our pages are served); "" when unset."""
    try:
        from airflow.configuration import conf

        return str(conf.get("api", "base_url", fallback="") or "").rstrip("/")
    except Exception:
        return ""


def remediation_url(run_id: int | None) -> str:
    path = f"{UI_PREFIX}/remediations/{run_id}" if run_id is not None else f"{UI_PREFIX}/remediations"
    return ui_base() + path


def decisions_url(alert_name: str, namespace: str, decision: str) -> str:
    query = urlencode(
        {k: v for k, v in (("decision", decision), ("alert", alert_name), ("namespace", namespace)) if v}
    )
    return f"{ui_base()}{UI_PREFIX}/decisions?{query}"


# -- notifiers ----------------------------------------------------------------------------------
def notifier_specs(config: EscalationConfig) -> list[tuple[str, dict[str, Any]]]:
    specs: list[tuple[str, dict[str, Any]]] = []
    if config.conn_id:
        specs.append(("kubernaut.notifiers.KubernautWebhookNotifier", {"conn_id": config.conn_id}))
    specs += [(n.notifier, dict(n.kwargs)) for n in config.notifiers]
    return specs


def enabled(config: EscalationConfig, outcome: str) -> bool:
    return outcome in config.outcomes and bool(config.conn_id or config.notifiers)


def build_notifier(path: str, kwargs: Mapping[str, Any]) -> Any:
    """The notifier named by ``path`` (configuration, never alert data); a clear error naming it."""
    from airflow.sdk.bases.notifier import BaseNotifier

    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"escalation notifier {path!r} cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, BaseNotifier)):
        raise ValueError(f"escalation notifier {path!r} is not a BaseNotifier subclass")
    return cls(**kwargs)


_URL = re.compile(r"(https?://)(?:[^\s/@]*@)?([^\s/?#]+)[^\s'\"]*")


def clean_error(exc: BaseException) -> str:
    """A delivery error fit for logs and the history: URLs cut to scheme and host (webhook URLs
    often carry their token), and Airflow's masker applied (connection passwords it knows)."""
    text = _URL.sub(r"\1\2/…", f"{type(exc).__name__}: {exc}")
    try:
        redact = importlib.import_module("airflow.sdk.log").redact
        text = str(redact(text))
    except Exception:
        pass
    return " ".join(text.split())[:500]


def notifier_name(path: str, kwargs: Mapping[str, Any]) -> str:
    """How records and logs name a notifier: its class and connection, never its arguments."""
    name = path.rpartition(".")[2]
    return f"{name}({kwargs['conn_id']})" if "conn_id" in kwargs else name


def deliver(
    config: EscalationConfig,
    escalation: Escalation,
    context: Mapping[str, Any] | None = None,
    *,
    done: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Send through every configured notifier but those in ``done`` (sent by an earlier
    attempt); one result per notifier, never raises."""
    payload = escalation.payload()
    results: list[dict[str, Any]] = []
    for path, kwargs in notifier_specs(config):
        name = notifier_name(path, kwargs)
        if name in done:
            results.append({"notifier": name, "status": "sent", "earlier": True})
            continue
        try:
            notifier = build_notifier(path, kwargs)
            # A copy: BaseNotifier merges its template fields into the context it is given.
            notifier({**(context or {}), "escalation": payload})
            results.append({"notifier": name, "status": "sent"})
        except Exception as exc:
            results.append({"notifier": name, "status": "failed", "error": clean_error(exc)})
    return results


# -- the history record (once per subject and kind) ---------------------------------------------
def claim(history: Any, e: Escalation) -> list[str] | None:
    """Take the escalation's row: new, or failed before (or abandoned) and not tried too often.
    The notifiers an earlier attempt reached (not to be sent again); None: it was sent
    already, or another process is sending it now."""
    rows = history._query(
        f"""
        INSERT INTO kubernaut_escalations (run_id, subject, kind, alert_name, template, target, reason, url)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (subject, kind) DO UPDATE
           SET status = 'sending', attempts = kubernaut_escalations.attempts + 1, updated_at = now()
         WHERE kubernaut_escalations.attempts < {MAX_ATTEMPTS}
           AND (kubernaut_escalations.status = 'failed'
                OR (kubernaut_escalations.status = 'sending'
                    AND kubernaut_escalations.updated_at < now() - interval '{STALE_SENDING}'))
        RETURNING deliveries
        """,
        (e.run_id, e.subject, e.outcome, e.alert_name, e.template, e.target_text, e.reason[:4000], e.url),
    )
    if not rows:
        return None
    earlier = rows[0]["deliveries"]
    earlier = json.loads(earlier) if isinstance(earlier, str) else earlier or []
    return [str(r["notifier"]) for r in earlier if isinstance(r, dict) and r.get("status") == "sent"]


def settle(history: Any, e: Escalation, results: list[dict[str, Any]]) -> str:
    status = "sent" if results and all(r["status"] == "sent" for r in results) else "failed"
    history._query(
        """UPDATE kubernaut_escalations SET status = %s, deliveries = %s::jsonb, updated_at = now()
            WHERE subject = %s AND kind = %s""",
        (status, json.dumps(results), e.subject, e.outcome),
    )
    if e.run_id is not None and history.outcome_of_kind(e.run_id, OUTCOME_KIND, status) is None:
        # The run's outcomes (its UI page, `kubernaut history show`) say that a person was told.
        detail = {"outcome": e.outcome, "url": e.url, "deliveries": results}
        history.record_outcome(e.run_id, OUTCOME_KIND, status, detail)
    return status


def escalate(
    config: EscalationConfig,
    history: Any,
    e: Escalation,
    *,
    context: Mapping[str, Any] | None = None,
    logger: Any = None,
) -> str:
    """Send ``e`` once: ``sent``, ``failed``, ``already`` (sent or being sent), or ``off`` (no
    notifier configured for its outcome). Never raises."""
    logger = logger or log
    if not enabled(config, e.outcome):
        return "off"
    done: list[str] = []
    try:
        if history is not None:
            claimed = claim(history, e)
            if claimed is None:
                logger.info(
                    "kubernaut: escalation %s of %s: sent already, being sent, or out of attempts",
                    e.outcome,
                    e.subject,
                )
                return "already"
            done = claimed
    except Exception as exc:  # no record possible: better sent twice than never
        logger.error(
            "kubernaut: escalation %s of %s: history unavailable (%s)", e.outcome, e.subject, clean_error(exc)
        )
        history = None
    results = deliver(config, e, context, done=done)
    for r in results:
        if r.get("earlier"):
            continue
        if r["status"] == "failed":
            logger.error(
                "kubernaut: escalation %s of %s via %s failed: %s",
                e.outcome,
                e.subject,
                r["notifier"],
                r["error"],
            )
        else:
            logger.info("kubernaut: escalation %s of %s sent via %s", e.outcome, e.subject, r["notifier"])
    status = "sent" if results and all(r["status"] == "sent" for r in results) else "failed"
    if history is not None:
        try:
            status = settle(history, e, results)
        except Exception as exc:
            logger.error(
                "kubernaut: could not record escalation %s of %s: %s", e.outcome, e.subject, clean_error(exc)
            )
    return status


# -- where the outcomes are decided -------------------------------------------------------------
def of_run(run: Any, dag_id: str, dag_run_id: str, template: str, outcome: str, reason: str) -> Escalation:
    """From a run's ``finalize`` (``run``: its RunContext)."""
    alert = run.alert or {}
    return Escalation(
        outcome=outcome,
        subject=f"{dag_id}/{dag_run_id}",
        alert_name=str(alert.get("name", "")),
        target={
            "kind": str(alert.get("kind", "")),
            "namespace": str(alert.get("namespace", "")),
            "name": str(alert.get("resource", "")),
        },
        template=template,
        reason=reason,
        url=remediation_url(run.run_id),
        dag_id=dag_id,
        dag_run_id=dag_run_id,
        run_id=run.run_id,
        cluster=run.cluster.name,
    )


def escalate_run(context: Any, run: Any, template: str, outcome: str, reason: str, logger: Any) -> str:
    """``finalize``: escalate the run's outcome if the configuration says so (never a dry run:
    it changed nothing). Never raises."""
    try:
        if run.conf.get("dry_run") or not enabled(run.config.escalation, outcome):
            return "off"
        dag_run = context["dag_run"]
        e = of_run(run, dag_run.dag_id, dag_run.run_id, template, outcome, reason)
        return escalate(run.config.escalation, run.history, e, context=context, logger=logger)
    except Exception as exc:
        logger.error("kubernaut: escalation of %s failed: %s", outcome, clean_error(exc))
        return "failed"


def of_decision(d: Any) -> Escalation:
    """From an intake decision (``d``: kubernaut.intake.decisions.AlertDecision)."""
    target = d.target.as_dict()
    return Escalation(
        outcome=str(d.decision),
        subject=f"{d.dag_id}/{d.dag_run_id}",
        alert_name=d.alertname,
        target={k: str(target.get(k, "")) for k in ("kind", "namespace", "name")},
        template=d.template,
        reason=d.reason,
        url=decisions_url(d.alertname, str(target.get("namespace", "")), str(d.decision)),
        dag_id=d.dag_id,
        dag_run_id=d.dag_run_id,
        cluster=d.cluster,
        extra={"fingerprint": d.fingerprint},
    )
