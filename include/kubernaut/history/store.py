"""The remediation history in PostgreSQL, through the postgres provider's PostgresHook.

Tasks write here as they go: the run, each step, and the undo journal. The journal row
for a step is written before the step changes anything, so a task killed at any moment
leaves enough behind to undo (or to resume without changing twice).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernaut.history.migrations import MIGRATIONS, SCHEMA_TABLE

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "kubernaut_history"
FINAL_FAILURES = ("failed", "rolled_back", "partially_rolled_back", "rollback_failed")


class HistoryUnavailable(RuntimeError):
    """The history database cannot be reached or is not migrated."""


@dataclass(frozen=True)
class JournalEntry:
    id: int
    step: str
    action: str
    parameters: dict[str, Any]
    prior_state: dict[str, Any]
    rollback_mode: str
    undo_status: str
    undo_attempts: int
    completed_at: datetime | None


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


class UndoRecordConflict(RuntimeError):
    """A step saved an undo record that differs from the one journaled for it already."""


def journal_form(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as the journal gives it back (JSON: tuples become lists, dates strings)."""
    loaded: dict[str, Any] = json.loads(_json(record))
    return loaded


def check_same_undo(step: str, journaled: Mapping[str, Any] | None, new: Mapping[str, Any]) -> None:
    """The undo-journal contract, the same in production and in the test-kit: a step journals
    its complete undo record once, before its first change. The first record of the step's
    attempt chain wins, since its change may already be made: a retried attempt gets it back
    as ``prior_undo`` and must reuse it (``ActionContext.remember_prior`` does). Saving that
    same record again is harmless; saving another one would be lost or would replace the true
    prior state, so it is an error, raised before the change it precedes."""
    from kubernaut.secrets import open_record

    if journaled is None:
        return
    first, again = journal_form(open_record(journaled)[0]), journal_form(open_record(new)[0])
    if first != again:
        changed = sorted(k for k in first.keys() | again.keys() if first.get(k) != again.get(k))
        raise UndoRecordConflict(
            f"step {step!r}: saved an undo record that differs from the one journaled for it (in "
            f"{', '.join(changed)}); an action journals its complete undo record once, before its first "
            "change (ctx.remember_prior), and reuses ctx.prior_undo on a retry"
        )


def _hook_connect(conn_id: str) -> Callable[[], Any]:
    def connect() -> Any:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        return PostgresHook(postgres_conn_id=conn_id).get_conn()

    return connect


class History:
    def __init__(self, conn_id: str = DEFAULT_CONN_ID, *, connect: Callable[[], Any] | None = None) -> None:
        self.conn_id = conn_id
        self._connect = connect or _hook_connect(conn_id)
        self._conn: Any = None

    # -- plumbing ---------------------------------------------------------------------
    def _connection(self) -> Any:
        if self._conn is None or getattr(self._conn, "closed", False):
            try:
                self._conn = self._connect()
            except Exception as exc:
                raise HistoryUnavailable(f"history database ({self.conn_id}) unreachable: {exc}") from exc
            self._conn.autocommit = True
        return self._conn

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                if cur.description is None:
                    return []
                names = [d[0] for d in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except Exception:
            self.close()  # a broken connection is not reused
            raise

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    # -- schema -----------------------------------------------------------------------
    def version(self) -> int:
        self._query(SCHEMA_TABLE)
        row = self._one("SELECT coalesce(max(version), 0) AS v FROM kubernaut_schema_version")
        return int(row["v"]) if row else 0

    def migrate(self) -> list[int]:
        """Apply pending migrations in order, each in its own transaction (serialized by a lock)."""
        conn = self._connection()
        applied: list[int] = []
        self._query("SELECT pg_advisory_lock(hashtext('kubernaut_migrate'))")
        try:
            current = self.version()
            for version, summary, sql in MIGRATIONS:
                if version <= current:
                    continue
                conn.autocommit = False
                try:
                    with conn.cursor() as cur:
                        cur.execute(sql)
                        cur.execute(
                            "INSERT INTO kubernaut_schema_version (version, summary) VALUES (%s, %s)",
                            (version, summary),
                        )
                    conn.commit()
                except Exception:
                    conn.rollback()
                    raise
                finally:
                    conn.autocommit = True
                applied.append(version)
        finally:
            self._query("SELECT pg_advisory_unlock(hashtext('kubernaut_migrate'))")
        return applied

    # -- runs and steps (written by tasks) ----------------------------------------------
    def ensure_run(
        self,
        dag_id: str,
        dag_run_id: str,
        template: str,
        alert: Mapping[str, Any],
        dry_run: bool,
        *,
        cluster: str = "",
        kube_conn_id: str = "",
    ) -> int:
        run_id, _ = self.ensure_run_with_outcome(
            dag_id, dag_run_id, template, alert, dry_run, cluster=cluster, kube_conn_id=kube_conn_id
        )
        return run_id

    def ensure_run_with_outcome(
        self,
        dag_id: str,
        dag_run_id: str,
        template: str,
        alert: Mapping[str, Any],
        dry_run: bool,
        *,
        cluster: str = "",
        kube_conn_id: str = "",
        outcome: tuple[str, str] | None = None,
    ) -> tuple[int, dict[str, Any] | None]:
        """``ensure_run`` and, in the same round trip, ``outcome_of_kind(run, *outcome)``."""
        kind, value = outcome or ("", "")
        row = self._one(
            """
            WITH r AS (
                INSERT INTO kubernaut_runs (dag_id, dag_run_id, template, alert_fingerprint, alert_name,
                                            target_kind, target_namespace, target_name, dry_run,
                                            cluster, kube_conn_id)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (dag_id, dag_run_id) DO UPDATE SET dag_id = EXCLUDED.dag_id
                RETURNING id
            )
            SELECT r.id AS run_id, o.id, o.run_id AS outcome_run_id, o.kind, o.outcome, o.detail,
                   o.recorded_at
              FROM r LEFT JOIN LATERAL (
                   SELECT * FROM kubernaut_outcomes
                    WHERE %s AND run_id = r.id AND kind = %s AND outcome = %s
                    ORDER BY id LIMIT 1) o ON TRUE
            """,
            (
                dag_id,
                dag_run_id,
                template,
                str(alert.get("fingerprint", "")),
                str(alert.get("name", "")),
                str(alert.get("kind", "")),
                str(alert.get("namespace", "")),
                str(alert.get("resource", "")),
                dry_run,
                cluster,
                kube_conn_id,
                outcome is not None,
                kind,
                value,
            ),
        )
        assert row is not None
        run_id = int(row["run_id"])
        if row["id"] is None:
            return run_id, None
        found = {
            "id": row["id"],
            "run_id": row["outcome_run_id"],
            "kind": row["kind"],
            "outcome": row["outcome"],
            "detail": _as_dict(row["detail"]),
            "recorded_at": row["recorded_at"],
        }
        return run_id, found

    def finish_run(self, run_id: int, status: str, detail: str = "") -> None:
        self._query(
            "UPDATE kubernaut_runs SET status = %s, detail = %s, finished_at = now() WHERE id = %s",
            (status, detail, run_id),
        )

    def step_started(self, run_id: int, step: str, action: str, parameters: Mapping[str, Any]) -> None:
        self._query(
            """
            INSERT INTO kubernaut_steps (run_id, step, action, parameters, attempts)
            VALUES (%s, %s, %s, %s::jsonb, 1)
            ON CONFLICT (run_id, step) DO UPDATE
               SET attempts = kubernaut_steps.attempts + 1, status = 'running', error = '',
                   parameters = EXCLUDED.parameters, started_at = now(), finished_at = NULL
            """,
            (run_id, step, action, _json(parameters)),
        )

    def step_finished(
        self, run_id: int, step: str, status: str, result: Any = None, error: str = "", action: str = ""
    ) -> None:
        self._query(
            """
            INSERT INTO kubernaut_steps (run_id, step, action, status, result, error, attempts,
                                         finished_at, duration_ms)
            VALUES (%s, %s, %s, %s, %s::jsonb, %s, 1, now(), 0)
            ON CONFLICT (run_id, step) DO UPDATE
               SET status = EXCLUDED.status, result = EXCLUDED.result, error = EXCLUDED.error,
                   finished_at = now(),
                   duration_ms = (extract(epoch FROM now() - kubernaut_steps.started_at) * 1000)::int
            """,
            (run_id, step, action, status, _json(result), error[:4000]),
        )

    # -- undo journal -------------------------------------------------------------------
    def save_undo(
        self,
        run_id: int,
        step: str,
        action: str,
        parameters: Mapping[str, Any],
        prior_state: Mapping[str, Any],
        rollback_mode: str = "undo",
    ) -> None:
        """Journal a step's undo record: once per step, the first record wins (see
        ``check_same_undo``). Saving it again is a no-op; saving a different one raises."""
        row = self._one(
            """
            INSERT INTO kubernaut_undo_journal (run_id, step, action, parameters, prior_state, rollback_mode)
            VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s)
            ON CONFLICT (run_id, step) DO NOTHING
            RETURNING id
            """,
            (run_id, step, action, _json(parameters), _json(prior_state), rollback_mode),
        )
        if row is None:
            check_same_undo(step, self.undo_record(run_id, step), prior_state)

    def undo_record(self, run_id: int, step: str) -> dict[str, Any] | None:
        """The journaled record as stored (sealed if the step had sensitive parameters)."""
        row = self._one(
            "SELECT prior_state FROM kubernaut_undo_journal WHERE run_id = %s AND step = %s", (run_id, step)
        )
        return _as_dict(row["prior_state"]) if row else None

    def journal(self, run_id: int) -> list[JournalEntry]:
        """Entries in rollback order: the most recently completed change first."""
        rows = self._query(
            """
            SELECT j.id, j.step, j.action, j.parameters, j.prior_state, j.rollback_mode, j.undo_status,
                   j.undo_attempts, coalesce(s.finished_at, j.recorded_at) AS completed_at
              FROM kubernaut_undo_journal j
              LEFT JOIN kubernaut_steps s ON s.run_id = j.run_id AND s.step = j.step
             WHERE j.run_id = %s
             ORDER BY coalesce(s.finished_at, j.recorded_at) DESC, j.id DESC
            """,
            (run_id,),
        )
        return [
            JournalEntry(
                id=int(r["id"]),
                step=r["step"],
                action=r["action"],
                parameters=_as_dict(r["parameters"]),
                prior_state=_as_dict(r["prior_state"]),
                rollback_mode=r["rollback_mode"],
                undo_status=r["undo_status"],
                undo_attempts=int(r["undo_attempts"]),
                completed_at=r["completed_at"],
            )
            for r in rows
        ]

    def mark_undo(self, entry_id: int, status: str, result: Any) -> None:
        self._query(
            """
            UPDATE kubernaut_undo_journal
               SET undo_status = %s, undo_result = %s::jsonb, undo_attempts = undo_attempts + 1,
                   undone_at = now()
             WHERE id = %s
            """,
            (status, _json(result), entry_id),
        )

    @contextmanager
    def run_lock(self, run_id: int) -> Iterator[None]:
        """One rollback per run at a time, across processes; released if the holder dies."""
        locker = History(self.conn_id, connect=self._connect)
        locker._query("SELECT pg_advisory_lock(%s, %s)", (0x6B75, run_id))
        try:
            yield
        finally:
            try:
                locker._query("SELECT pg_advisory_unlock(%s, %s)", (0x6B75, run_id))
            finally:
                locker.close()

    # -- outcomes and decisions ------------------------------------------------------------
    def record_outcome(self, run_id: int, kind: str, outcome: str, detail: Mapping[str, Any]) -> None:
        self._query(
            "INSERT INTO kubernaut_outcomes (run_id, kind, outcome, detail) VALUES (%s, %s, %s, %s::jsonb)",
            (run_id, kind, outcome, _json(detail)),
        )

    def record_decision(
        self,
        *,
        fingerprint: str,
        alert_name: str,
        alert_status: str,
        decision: str,
        reason: str,
        template: str = "",
        dag_id: str = "",
        dag_run_id: str = "",
        target: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        cluster: str = "",
    ) -> None:
        target = target or {}
        self._query(
            """
            INSERT INTO kubernaut_alert_decisions (fingerprint, alert_name, alert_status, decision, reason,
                template, dag_id, dag_run_id, target_kind, target_namespace, target_name, labels, cluster)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)
            """,
            (
                fingerprint,
                alert_name,
                alert_status,
                decision,
                reason,
                template,
                dag_id,
                dag_run_id,
                target.get("kind", ""),
                target.get("namespace", ""),
                target.get("name", ""),
                _json(dict(labels or {})),
                cluster,
            ),
        )

    # -- queries (CLI, alert intake) -------------------------------------------------------
    def runs(
        self,
        *,
        limit: int = 20,
        alert: str | None = None,
        namespace: str | None = None,
        target: str | None = None,
        template: str | None = None,
        status: str | None = None,
        cluster: str | None = None,
    ) -> list[dict[str, Any]]:
        where, params = ["TRUE"], []
        for column, value in (
            ("cluster", cluster),
            ("alert_name", alert),
            ("target_namespace", namespace),
            ("target_name", target),
            ("template", template),
            ("status", status),
        ):
            if value:
                where.append(f"{column} = %s")
                params.append(value)
        return self._query(
            f"SELECT * FROM kubernaut_runs WHERE {' AND '.join(where)} "
            "ORDER BY started_at DESC, id DESC LIMIT %s",
            (*params, limit),
        )

    def run(self, key: str | int) -> dict[str, Any] | None:
        """One run with its steps and journal, by id or dag_run_id."""
        if isinstance(key, int) or str(key).isdigit():
            row = self._one("SELECT * FROM kubernaut_runs WHERE id = %s", (int(key),))
        else:
            row = self._one(
                "SELECT * FROM kubernaut_runs WHERE dag_run_id = %s ORDER BY id DESC LIMIT 1", (key,)
            )
        if row is None:
            return None
        run_id = row["id"]
        row["steps"] = self._query(
            "SELECT * FROM kubernaut_steps WHERE run_id = %s ORDER BY started_at, id", (run_id,)
        )
        row["undo"] = self._query(
            "SELECT * FROM kubernaut_undo_journal WHERE run_id = %s ORDER BY undone_at NULLS LAST, id",
            (run_id,),
        )
        row["outcomes"] = self._query(
            "SELECT * FROM kubernaut_outcomes WHERE run_id = %s ORDER BY id", (run_id,)
        )
        row["assessment"] = self.assessment(run_id)
        return row

    # A target is (cluster, namespace, name): the same pod name in two clusters is two targets
    # (cluster "" in single-cluster mode).
    def last_run(
        self, template: str, namespace: str, name: str, *, cluster: str = ""
    ) -> dict[str, Any] | None:
        return self._one(
            """SELECT * FROM kubernaut_runs WHERE template = %s AND target_namespace = %s AND target_name = %s
               AND cluster = %s AND NOT dry_run ORDER BY started_at DESC LIMIT 1""",
            (template, namespace, name, cluster),
        )

    def active_runs(self, namespace: str, name: str, *, cluster: str = "") -> list[dict[str, Any]]:
        return self._query(
            """SELECT * FROM kubernaut_runs WHERE target_namespace = %s AND target_name = %s
               AND cluster = %s AND status = 'running' ORDER BY started_at DESC""",
            (namespace, name, cluster),
        )

    def consecutive_failures(self, alert_name: str, namespace: str, name: str, *, cluster: str = "") -> int:
        """Failed runs for this alert and target since the last success."""
        rows = self._query(
            """SELECT status FROM kubernaut_runs WHERE alert_name = %s AND target_namespace = %s
               AND target_name = %s AND cluster = %s AND status <> 'running' AND NOT dry_run
               ORDER BY started_at DESC LIMIT 50""",
            (alert_name, namespace, name, cluster),
        )
        count = 0
        for row in rows:
            if row["status"] not in FINAL_FAILURES:
                break
            count += 1
        return count

    def outcome_of_kind(self, run_id: int, kind: str, outcome: str) -> dict[str, Any] | None:
        """The first outcome of that kind and value recorded for the run, if any."""
        row = self._one(
            "SELECT * FROM kubernaut_outcomes WHERE run_id = %s AND kind = %s AND outcome = %s "
            "ORDER BY id LIMIT 1",
            (run_id, kind, outcome),
        )
        if row is not None:
            row["detail"] = _as_dict(row["detail"])
        return row

    # -- unblocks (``kubernaut unblock``: a person clears an ineffective-chain block) ---------
    def record_unblock(
        self,
        *,
        kind: str,
        namespace: str,
        name: str,
        alert_name: str,
        by: str,
        reason: str,
        cluster: str = "",
    ) -> dict[str, Any]:
        row = self._one(
            """
            INSERT INTO kubernaut_unblocks (target_kind, target_namespace, target_name, alert_name,
                                            unblocked_by, reason, cluster)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *
            """,
            (kind, namespace, name, alert_name, by, reason, cluster),
        )
        assert row is not None
        return row

    def unblocks(
        self, *, namespace: str | None = None, name: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        where, params = ["TRUE"], []
        for column, value in (("target_namespace", namespace), ("target_name", name)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        return self._query(
            f"SELECT * FROM kubernaut_unblocks WHERE {' AND '.join(where)} "
            "ORDER BY unblocked_at DESC, id DESC LIMIT %s",
            (*params, limit),
        )

    # -- effectiveness assessments (kubernaut.assessment) -----------------------------------
    def record_assessment(
        self,
        run_id: int,
        *,
        verdict: str,
        score: float | None,
        outcome: str,
        reasons: list[str],
        components: Mapping[str, Any],
        after_s: float,
        window_s: float,
    ) -> None:
        """One assessment per run: recording it again (a retried task) replaces it."""
        self._query(
            """
            INSERT INTO kubernaut_assessments (run_id, verdict, score, outcome, reasons, components,
                                               after_s, window_s)
            VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s)
            ON CONFLICT (run_id) DO UPDATE
               SET verdict = EXCLUDED.verdict, score = EXCLUDED.score, outcome = EXCLUDED.outcome,
                   reasons = EXCLUDED.reasons, components = EXCLUDED.components,
                   after_s = EXCLUDED.after_s, window_s = EXCLUDED.window_s, assessed_at = now()
            """,
            (run_id, verdict, score, outcome, _json(reasons), _json(dict(components)), after_s, window_s),
        )

    def assessment(self, run_id: int) -> dict[str, Any] | None:
        try:
            return self._one("SELECT * FROM kubernaut_assessments WHERE run_id = %s", (run_id,))
        except Exception as exc:  # a history not migrated this far yet: no assessments
            if getattr(exc, "pgcode", None) == "42P01":
                return None
            raise

    def effectiveness(
        self,
        *,
        since_seconds: float | None = None,
        alert: str | None = None,
        template: str | None = None,
        recent: int = 10,
    ) -> list[dict[str, Any]]:
        """Per template x alert name: runs, success rate, assessed runs, effective rate, mean
        score, and the verdicts of the ``recent`` newest assessed runs (oldest first)."""
        where: list[str] = ["NOT r.dry_run"]
        params: list[Any] = []
        if since_seconds is not None:
            where.append("r.started_at >= now() - make_interval(secs => %s)")
            params.append(since_seconds)
        for column, value in (("r.alert_name", alert), ("r.template", template)):
            if value:
                where.append(f"{column} = %s")
                params.append(value)
        rows = self._query(
            f"""
            SELECT r.template, r.alert_name, r.status, a.verdict, a.score
              FROM kubernaut_runs r LEFT JOIN kubernaut_assessments a ON a.run_id = r.id
             WHERE {" AND ".join(where)}
             ORDER BY r.started_at, r.id
            """,
            tuple(params),
        )
        return effectiveness_summary(rows, recent=recent)


SUCCESS_STATUSES = ("success", "not_needed")


def effectiveness_summary(rows: list[dict[str, Any]], *, recent: int = 10) -> list[dict[str, Any]]:
    """``History.effectiveness`` from runs (oldest first) with their verdict and score."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["template"], row["alert_name"]), []).append(row)
    summary = []
    for (template, alert), runs in sorted(groups.items()):
        finished = [r for r in runs if r["status"] != "running"]
        assessed = [r for r in runs if r.get("verdict") in ("effective", "ineffective")]
        scores = [float(r["score"]) for r in assessed if r.get("score") is not None]
        effective = sum(1 for r in assessed if r["verdict"] == "effective")
        verdicts = [r["verdict"] for r in runs if r.get("verdict")][-recent:]
        summary.append(
            {
                "template": template,
                "alert": alert,
                "runs": len(runs),
                "success_rate": _rate(
                    sum(1 for r in finished if r["status"] in SUCCESS_STATUSES), len(finished)
                ),
                "assessed": len(assessed),
                "unknown": sum(1 for r in runs if r.get("verdict") == "unknown"),
                "effective": effective,
                "effective_rate": _rate(effective, len(assessed)),
                "mean_score": round(sum(scores) / len(scores), 3) if scores else None,
                "recent": verdicts,
                "trend": _trend([r["verdict"] for r in assessed][-recent:]),
            }
        )
    return summary


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _trend(verdicts: list[str]) -> str:
    """Effective rate of the newer half of the recent assessed runs against the older half."""
    if len(verdicts) < 4:
        return "n/a"
    half = len(verdicts) // 2
    older, newer = verdicts[:half], verdicts[half:]
    before = sum(v == "effective" for v in older) / len(older)
    after = sum(v == "effective" for v in newer) / len(newer)
    if after > before + 0.1:
        return "improving"
    if after < before - 0.1:
        return "worsening"
    return "steady"


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {"value": loaded}
    return dict(value) if isinstance(value, Mapping) else {}
