"""What the history says about how well templates fixed an alert (the learned choice's
evidence, ``kubernaut.intake.choice``), and which templates already ran for one occurrence
(fallback chains, ``kubernaut.intake.fallback``).

A run counts as effective when its assessment says ``effective`` (table
``kubernaut_assessments``, when this history has it), else when it ended ``success``; it
counts as not effective when assessed ``ineffective``, else when it ended failed or rolled
back. Dry runs, runs still going, and runs judged neither way (``not_needed``, ``declined``,
an ``unknown`` verdict on a ``declined`` run ...) do not count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubernaut.history import History
from kubernaut.history.store import FINAL_FAILURES
from kubernaut.intake.choice import Outcomes

JUDGED_STATUSES = ("success", *FINAL_FAILURES)
LAUNCH_RECORDS = ("triggered", "triggering", "unconfirmed")
FALLBACK_MARK = "__fallback__"  # a fallback's run id: <the occurrence's run id>__fallback__<template>
FALLBACK_LIKE = "\\_\\_fallback\\_\\_%"


def _assessments(history: History) -> bool:
    finder = getattr(history, "_assessments_table", None)
    if callable(finder):
        return bool(finder())
    rows = history._query(
        """
        SELECT count(*) AS n FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = 'kubernaut_assessments'
           AND column_name IN ('run_id', 'verdict')
        """
    )
    return bool(rows) and int(rows[0]["n"]) == 2


def template_outcomes(
    history: Any, alert_name: str, kind: str, templates: list[str], since: datetime
) -> list[Outcomes]:
    """Per template and namespace, effective runs out of judged ones (see the module doc)."""
    if not templates:
        return []
    if not isinstance(history, History):  # a port of another kind (tests' fakes) may offer it
        reader = getattr(history, "template_outcomes", None)
        return list(reader(alert_name, kind, templates, since)) if callable(reader) else []
    if _assessments(history):
        verdict = "(SELECT a.verdict FROM kubernaut_assessments a WHERE a.run_id = r.id)"
    else:
        verdict = "NULL::text"
    rows = history._query(
        f"""
        SELECT template, namespace,
               count(*) FILTER (WHERE verdict = 'effective'
                                   OR (verdict IS DISTINCT FROM 'ineffective' AND status = 'success'))
                 AS effective,
               count(*) AS total
          FROM (SELECT r.template, r.target_namespace AS namespace, r.status, {verdict} AS verdict
                  FROM kubernaut_runs r
                 WHERE r.alert_name = %s AND r.target_kind = %s AND r.template = ANY(%s)
                   AND NOT r.dry_run AND r.started_at >= %s) runs
         WHERE verdict IN ('effective', 'ineffective') OR status = ANY(%s)
         GROUP BY template, namespace
        """,
        (alert_name, kind, templates, since, list(JUDGED_STATUSES)),
    )
    return [Outcomes(r["template"], r["namespace"], int(r["effective"]), int(r["total"])) for r in rows]


def tried_templates(history: Any, base_run_id: str) -> set[str]:
    """The templates launched or run for one alert occurrence: its first run (``base_run_id``)
    and its fallbacks (``<base>__fallback__<template>``)."""
    if not isinstance(history, History):
        reader = getattr(history, "tried_templates", None)
        return set(reader(base_run_id)) if callable(reader) else set()
    escaped = base_run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = escaped + FALLBACK_LIKE
    rows = history._query(
        """
        SELECT template FROM kubernaut_runs WHERE dag_run_id = %s OR dag_run_id LIKE %s
        UNION
        SELECT template FROM kubernaut_alert_decisions
         WHERE (dag_run_id = %s OR dag_run_id LIKE %s) AND decision = ANY(%s)
        """,
        (base_run_id, pattern, base_run_id, pattern, list(LAUNCH_RECORDS)),
    )
    return {str(r["template"]) for r in rows if r["template"]}


def later_launches(history: Any, base_run_id: str, run_id: str) -> list[dict[str, Any]]:
    """Fallbacks of the occurrence launched after run ``run_id`` started: a chain is sequential
    (each link is launched when the one before has ended), so these are that run's hand-on."""
    if not isinstance(history, History):
        reader = getattr(history, "later_launches", None)
        return list(reader(base_run_id, run_id)) if callable(reader) else []
    escaped = base_run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return history._query(
        """
        SELECT d.template, d.dag_run_id, d.decision FROM kubernaut_alert_decisions d
         WHERE d.dag_run_id LIKE %s AND d.dag_run_id <> %s AND d.decision = ANY(%s)
           AND d.received_at > (SELECT r.started_at FROM kubernaut_runs r WHERE r.dag_run_id = %s
                                 ORDER BY r.id DESC LIMIT 1)
         ORDER BY d.id
        """,
        (escaped + FALLBACK_LIKE, run_id, list(LAUNCH_RECORDS), run_id),
    )
