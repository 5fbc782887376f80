"""Read models of the remediation history for the UI pages and the metrics endpoint.

Every list is keyset-paged on ``(time, id)`` (newest first), so a page costs the same at row
100,000 as at row 10 (the indexes are migration 4). Effectiveness comes from an assessment
table when the history has one (``kubernaut_assessments`` with ``run_id``; read as JSON so the
UI tolerates its exact columns) and is blank otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernaut.history.store import DEFAULT_CONN_ID, FINAL_FAILURES, HistoryUnavailable

OUTCOMES = (
    "success",
    "rolled_back",
    "partially_rolled_back",
    "rollback_failed",
    "declined",
    "not_needed",
    "failed",
    "running",
)
GREEN = ("success", "not_needed")
DECISIONS = (
    "triggered",
    "duplicate",
    "cooldown",
    "busy",
    "blocked",
    "protected",
    "resolved",
    "no_template",
    "no_target",
    "paused",
    "triggering",
    "unconfirmed",
    "launch_failed",
)
UNDO_STATUSES = ("pending", "applied", "failed", "skipped", "not_restorable")
VERDICTS = ("effective", "ineffective", "unknown")
ASSESSMENT_TABLE = "kubernaut_assessments"
STATEMENT_TIMEOUT_MS = 10000
# Histogram buckets (seconds) of step and run durations.
STEP_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600)
RUN_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 3600)


@dataclass(frozen=True)
class RunFilter:
    alert: str = ""
    namespace: str = ""
    template: str = ""
    outcome: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class DecisionFilter:
    alert: str = ""
    namespace: str = ""
    decision: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Cursor:
    """Position after the last row shown: its time and id (both descending)."""

    at: datetime
    id: int

    def encode(self) -> str:
        return f"{self.at.isoformat()}~{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        at, sep, ident = text.rpartition("~")
        if not sep or not ident.isdigit():
            return None
        try:
            return cls(datetime.fromisoformat(at), int(ident))
        except ValueError:
            return None


@dataclass
class Page:
    rows: list[dict[str, Any]]
    next: Cursor | None = None


@dataclass(frozen=True)
class Block:
    alert_name: str
    target_kind: str
    target_namespace: str
    target_name: str
    cluster: str = ""
    received_at: datetime | None = None
    reason: str = ""


@dataclass
class Metrics:
    remediations: list[tuple[str, str, int]] = field(default_factory=list)  # template, outcome, n
    decisions: list[tuple[str, int]] = field(default_factory=list)
    undo: list[tuple[str, int]] = field(default_factory=list)
    verdicts: list[tuple[str, int]] = field(default_factory=list)
    blocked_targets: int = 0
    unblocks: int = 0
    step_durations: list[dict[str, Any]] = field(default_factory=list)  # action, buckets..., sum, count
    run_durations: list[dict[str, Any]] = field(default_factory=list)  # template, buckets..., sum, count


def _hook_connect(conn_id: str) -> Callable[[], Any]:
    def connect() -> Any:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        return PostgresHook(postgres_conn_id=conn_id).get_conn()

    return connect


class UiQueries:
    """Read-mostly queries; one connection per thread (the api-server runs sync endpoints on a
    thread pool), read-only transactions except for clearing a block."""

    def __init__(self, conn_id: str = DEFAULT_CONN_ID, *, connect: Callable[[], Any] | None = None) -> None:
        self.conn_id = conn_id
        self._connect = connect or _hook_connect(conn_id)
        self._local = threading.local()
        self._assessments = False

    # -- plumbing ----------------------------------------------------------------------------
    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = self._connect()
            except Exception as exc:
                raise HistoryUnavailable(f"history database ({self.conn_id}) unreachable: {exc}") from exc
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
            self._local.conn = conn
        return conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, tuple(params))
                if cur.description is None:
                    return []
                names = [d[0] for d in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken
                pass

    def has_assessments(self) -> bool:
        """Whether the history has the assessment table (remembered once it has)."""
        if not self._assessments:
            row = self.query("SELECT to_regclass(%s) IS NOT NULL AS present", (ASSESSMENT_TABLE,))
            present = bool(row and row[0]["present"])
            if present:
                cols = self.query(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                    (ASSESSMENT_TABLE,),
                )
                present = "run_id" in {c["column_name"] for c in cols}
            self._assessments = present
        return self._assessments

    def _assessment_join(self) -> tuple[str, str]:
        if not self.has_assessments():
            return "NULL::jsonb AS assessment", ""
        return (
            "a.j AS assessment",
            f"""LEFT JOIN LATERAL (SELECT to_jsonb(x) AS j FROM {ASSESSMENT_TABLE} x
                                    WHERE x.run_id = r.id ORDER BY x.id DESC LIMIT 1) a ON TRUE""",
        )

    # -- remediations --------------------------------------------------------------------------
    def remediations(
        self,
        f: RunFilter,
        *,
        limit: int = 50,
        after: Cursor | None = None,
        dag_ids: set[str] | None = None,
    ) -> Page:
        """Newest first; ``dag_ids`` (the DAGs the user may read) limits the rows when given."""
        where, params = _where_runs(f)
        if dag_ids is not None:
            where.append("r.dag_id = ANY(%s)")
            params.append(sorted(dag_ids))
        if after is not None:
            where.append("(r.started_at, r.id) < (%s, %s)")
            params += [after.at, after.id]
        column, join = self._assessment_join()
        rows = self.query(
            f"""
            SELECT r.id, r.dag_id, r.dag_run_id, r.template, r.alert_name, r.alert_fingerprint,
                   r.target_kind, r.target_namespace, r.target_name, r.cluster, r.dry_run, r.status, r.detail,
                   r.started_at, r.finished_at,
                   extract(epoch FROM coalesce(r.finished_at, now()) - r.started_at)::float AS duration_s,
                   {column}
              FROM kubernaut_runs r {join}
             WHERE {" AND ".join(where)}
             ORDER BY r.started_at DESC, r.id DESC
             LIMIT %s
            """,
            (*params, limit + 1),
        )
        return _paged(rows, limit, "started_at")

    def remediation(self, run_id: int) -> dict[str, Any] | None:
        column, join = self._assessment_join()
        rows = self.query(
            f"""SELECT r.*, extract(epoch FROM coalesce(r.finished_at, now()) - r.started_at)::float
                       AS duration_s, {column}
                  FROM kubernaut_runs r {join} WHERE r.id = %s""",
            (run_id,),
        )
        if not rows:
            return None
        run = rows[0]
        run["steps"] = self.query(
            "SELECT * FROM kubernaut_steps WHERE run_id = %s ORDER BY started_at, id", (run_id,)
        )
        # The undo journal in the order the rollback undid it; entries never undone last.
        run["undo"] = self.query(
            """SELECT * FROM kubernaut_undo_journal WHERE run_id = %s
               ORDER BY undone_at NULLS LAST, id""",
            (run_id,),
        )
        run["outcomes"] = self.query(
            "SELECT * FROM kubernaut_outcomes WHERE run_id = %s ORDER BY id", (run_id,)
        )
        # The alert as received and the intake's decision: the launch record of this run.
        launch = self.query(
            """SELECT * FROM kubernaut_alert_decisions WHERE dag_id = %s AND dag_run_id = %s
                  AND decision IN ('triggered', 'triggering', 'unconfirmed')
               ORDER BY decision = 'triggered' DESC, id LIMIT 1""",
            (run["dag_id"], run["dag_run_id"]),
        )
        run["decision"] = launch[0] if launch else None
        return run

    # -- decisions and blocks ------------------------------------------------------------------
    def decisions(self, f: DecisionFilter, *, limit: int = 50, after: Cursor | None = None) -> Page:
        where, params = _where(
            (("alert_name", f.alert), ("target_namespace", f.namespace), ("decision", f.decision)),
            "received_at",
            f.since,
            f.until,
        )
        if after is not None:
            where.append("(received_at, id) < (%s, %s)")
            params += [after.at, after.id]
        rows = self.query(
            f"""SELECT id, received_at, fingerprint, alert_name, alert_status, decision, reason, template,
                       dag_id, dag_run_id, target_kind, target_namespace, target_name
                  FROM kubernaut_alert_decisions WHERE {" AND ".join(where)}
                 ORDER BY received_at DESC, id DESC LIMIT %s""",
            (*params, limit + 1),
        )
        return _paged(rows, limit, "received_at")

    def blocks(self, *, days: int = 30) -> list[Block]:
        """Alert and target pairs the intake last answered ``blocked`` (by any blocking rule),
        with no unblock and no launch for that pair since."""
        rows = self.query(
            """
            SELECT b.alert_name, b.target_kind, b.target_namespace, b.target_name, b.cluster,
                   b.received_at, b.reason
              FROM (SELECT DISTINCT ON (alert_name, target_namespace, target_name) *
                      FROM kubernaut_alert_decisions
                     WHERE decision = 'blocked' AND received_at > now() - make_interval(days => %s)
                     ORDER BY alert_name, target_namespace, target_name, received_at DESC, id DESC) b
             WHERE NOT EXISTS (
                     SELECT 1 FROM kubernaut_unblocks u
                      WHERE u.target_namespace = b.target_namespace AND u.target_name = b.target_name
                        AND u.alert_name IN ('', b.alert_name) AND u.unblocked_at > b.received_at)
               AND NOT EXISTS (
                     SELECT 1 FROM kubernaut_alert_decisions t
                      WHERE t.target_namespace = b.target_namespace AND t.target_name = b.target_name
                        AND t.alert_name = b.alert_name AND t.decision = 'triggered'
                        AND t.received_at > b.received_at)
             ORDER BY b.received_at DESC
            """,
            (days,),
        )
        return [Block(**r) for r in rows]

    def clear_block(self, block: Block, user: str, reason: str = "") -> int:
        """Record who cleared the block and when (the intake counts failures after it only)."""
        rows = self.query(
            """INSERT INTO kubernaut_unblocks (target_kind, target_namespace, target_name, alert_name,
                                               unblocked_by, reason)
               VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                block.target_kind,
                block.target_namespace,
                block.target_name,
                block.alert_name,
                user,
                reason[:500],
            ),
        )
        return int(rows[0]["id"])

    def unblocks(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.query(
            "SELECT * FROM kubernaut_unblocks ORDER BY unblocked_at DESC, id DESC LIMIT %s", (limit,)
        )

    # -- templates -----------------------------------------------------------------------------
    def templates(self) -> list[dict[str, Any]]:
        rows = self.query(
            """
            SELECT r.template,
                   array_agg(DISTINCT r.alert_name) FILTER (WHERE r.alert_name <> '') AS alert_names,
                   count(*) AS runs,
                   count(*) FILTER (WHERE r.status = ANY(%s)) AS green,
                   count(*) FILTER (WHERE r.status <> 'running') AS finished,
                   max(r.started_at) AS last_run
              FROM kubernaut_runs r GROUP BY r.template ORDER BY r.template
            """,
            (list(GREEN),),
        )
        failures = {
            r["template"]: r
            for r in self.query(
                """SELECT DISTINCT ON (template) template, id, dag_id, dag_run_id, status, detail, started_at
                     FROM kubernaut_runs WHERE status = ANY(%s)
                    ORDER BY template, started_at DESC, id DESC""",
                (list(FINAL_FAILURES),),
            )
        }
        trend = self.query(
            """SELECT template, date_trunc('day', started_at) AS day, count(*) AS runs,
                      count(*) FILTER (WHERE status = ANY(%s)) AS green
                 FROM kubernaut_runs WHERE started_at > now() - interval '14 days'
                GROUP BY 1, 2 ORDER BY 1, 2""",
            (list(GREEN),),
        )
        for row in rows:
            row["alert_names"] = sorted(row["alert_names"] or [])
            row["success_rate"] = row["green"] / row["finished"] if row["finished"] else None
            row["last_failure"] = failures.get(row["template"])
            row["trend"] = [t for t in trend if t["template"] == row["template"]]
        if self.has_assessments():
            effective = {
                r["template"]: r
                for r in self.query(
                    f"""SELECT r.template,
                               count(*) FILTER (WHERE to_jsonb(a) ->> 'verdict'
                                                      IN ('effective', 'ineffective')) AS assessed,
                               count(*) FILTER (WHERE to_jsonb(a) ->> 'verdict' = 'effective') AS effective
                          FROM {ASSESSMENT_TABLE} a JOIN kubernaut_runs r ON r.id = a.run_id
                         GROUP BY r.template"""
                )
            }
            for row in rows:
                e = effective.get(row["template"])
                row["effective_rate"] = e["effective"] / e["assessed"] if e and e["assessed"] else None
        return rows

    def filter_choices(self) -> dict[str, list[str]]:
        """Values for the filters' pick lists: distinct values read by skipping through the
        column's index (a recursive CTE), not by scanning every run."""
        out: dict[str, list[str]] = {}
        for key, column in (("template", "template"), ("alert", "alert_name")):
            rows = self.query(
                f"""
                WITH RECURSIVE v AS (
                    (SELECT {column} AS v FROM kubernaut_runs ORDER BY {column} LIMIT 1)
                    UNION ALL
                    SELECT (SELECT {column} FROM kubernaut_runs WHERE {column} > v.v
                             ORDER BY {column} LIMIT 1)
                      FROM v WHERE v.v IS NOT NULL
                )
                SELECT v FROM v WHERE v IS NOT NULL LIMIT 200
                """
            )
            out[key] = [r["v"] for r in rows if r["v"]]
        return out

    # -- metrics -------------------------------------------------------------------------------
    def metrics(self) -> Metrics:
        m = Metrics()
        m.remediations = [
            (r["template"], r["status"], int(r["n"]))
            for r in self.query(
                "SELECT template, status, count(*) AS n FROM kubernaut_runs GROUP BY 1, 2 ORDER BY 1, 2"
            )
        ]
        m.decisions = [
            (r["decision"], int(r["n"]))
            for r in self.query(
                "SELECT decision, count(*) AS n FROM kubernaut_alert_decisions GROUP BY 1 ORDER BY 1"
            )
        ]
        m.undo = [
            (r["undo_status"], int(r["n"]))
            for r in self.query(
                "SELECT undo_status, count(*) AS n FROM kubernaut_undo_journal GROUP BY 1 ORDER BY 1"
            )
        ]
        if self.has_assessments():
            m.verdicts = [
                (str(r["verdict"]), int(r["n"]))
                for r in self.query(
                    f"""SELECT to_jsonb(a) ->> 'verdict' AS verdict, count(*) AS n FROM {ASSESSMENT_TABLE} a
                         GROUP BY 1 ORDER BY 1"""
                )
                if r["verdict"]
            ]
        m.blocked_targets = len(self.blocks())
        row = self.query("SELECT count(*) AS n FROM kubernaut_unblocks")
        m.unblocks = int(row[0]["n"])
        m.step_durations = self.query(
            _histogram_sql(
                "action",
                "duration_ms / 1000.0",
                "kubernaut_steps WHERE duration_ms IS NOT NULL",
                STEP_BUCKETS,
            )
        )
        m.run_durations = self.query(
            _histogram_sql(
                "template",
                "extract(epoch FROM finished_at - started_at)",
                "kubernaut_runs WHERE finished_at IS NOT NULL",
                RUN_BUCKETS,
            )
        )
        return m


def _histogram_sql(label: str, value: str, source: str, buckets: Sequence[float]) -> str:
    counts = ", ".join(f"count(*) FILTER (WHERE {value} <= {b}) AS le_{i}" for i, b in enumerate(buckets))
    return (
        f"SELECT {label} AS label, {counts}, coalesce(sum({value}), 0)::float AS sum, count(*) AS count "
        f"FROM {source} GROUP BY 1 ORDER BY 1"
    )


def _where(
    equals: Sequence[tuple[str, Any]], time_column: str, since: datetime | None, until: datetime | None
) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their parameters) of a list filter: each column given a value equals
    it; ``time_column`` in [since, until)."""
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    for column, value in equals:
        if value:
            where.append(f"{column} = %s")
            params.append(value)
    if since:
        where.append(f"{time_column} >= %s")
        params.append(since)
    if until:
        where.append(f"{time_column} < %s")
        params.append(until)
    return where, params


def _where_runs(f: RunFilter) -> tuple[list[str], list[Any]]:
    equals = (
        ("r.alert_name", f.alert),
        ("r.target_namespace", f.namespace),
        ("r.template", f.template),
        ("r.status", f.outcome),
    )
    return _where(equals, "r.started_at", f.since, f.until)


def _paged(rows: list[dict[str, Any]], limit: int, time_column: str) -> Page:
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = Cursor(rows[-1][time_column], int(rows[-1]["id"])) if more and rows else None
    return Page(rows, nxt)


def verdict_of(assessment: Mapping[str, Any] | None) -> tuple[str, Any]:
    """(verdict, score) of an assessment row read as JSON; blanks when there is none."""
    if not assessment:
        return "", None
    return str(assessment.get("verdict") or ""), assessment.get("score")
