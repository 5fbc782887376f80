"""History retention: delete what is older than the configuration keeps (``retention:``,
kubernaut.config.RetentionConfig), so the tables do not grow without bound.

Used by ``kubernaut history prune`` and the ``kubernaut_maintenance`` DAG. Deletes in batches,
each its own short transaction (rows picked ``FOR UPDATE SKIP LOCKED``, a lock timeout), so a
prune never holds long locks or waits behind the intake or a run. A run goes with its steps,
undo journal, outcomes, assessment and escalations (deleted explicitly, so each is counted);
a run still in flight (``running``) or awaiting its effectiveness assessment is never pruned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernaut.config import RetentionConfig
from kubernaut.history.store import History

RUN_CHILDREN = (
    "kubernaut_steps",
    "kubernaut_undo_journal",
    "kubernaut_outcomes",
    "kubernaut_assessments",
    "kubernaut_escalations",
)
LOCK_TIMEOUT = "5s"  # a batch that would wait longer for a lock fails instead of blocking others

# A finished run older than the cutoff that is not waiting for its assessment (requested and
# neither a verdict row nor its `assessment` outcome recorded yet).
_FINISHED_RUN = """
    r.status <> 'running' AND r.finished_at IS NOT NULL AND r.finished_at < %(cutoff)s
    AND NOT (
        EXISTS (SELECT 1 FROM kubernaut_outcomes o WHERE o.run_id = r.id
                AND o.kind = 'assessment_run' AND o.outcome = 'requested')
        AND NOT EXISTS (SELECT 1 FROM kubernaut_assessments a WHERE a.run_id = r.id)
        AND NOT EXISTS (SELECT 1 FROM kubernaut_outcomes o WHERE o.run_id = r.id AND o.kind = 'assessment')
    )
"""
_WITH_RUNS_CUTOFF = _FINISHED_RUN.replace("%(cutoff)s", "%(runs_cutoff)s")
_RUNS_CUT_IDS = f"SELECT r.id FROM kubernaut_runs r WHERE {_WITH_RUNS_CUTOFF}"
_SKIP_LOCKED = "FOR UPDATE SKIP LOCKED"
_HAS_STEPS = """(EXISTS (SELECT 1 FROM kubernaut_steps s WHERE s.run_id = r.id)
    OR EXISTS (SELECT 1 FROM kubernaut_undo_journal j WHERE j.run_id = r.id))"""

# Tables pruned on their own: (retention key, table, where on the row `t`).
_SIMPLE = (
    ("assessments", "kubernaut_assessments", "t.assessed_at < %(cutoff)s"),
    ("escalations", "kubernaut_escalations", "t.created_at < %(cutoff)s AND t.status <> 'sending'"),
    ("decisions", "kubernaut_alert_decisions", "t.received_at < %(cutoff)s"),
    ("unblocks", "kubernaut_unblocks", "t.unblocked_at < %(cutoff)s"),
)


@dataclass
class PruneReport:
    dry_run: bool
    deleted: dict[str, int] = field(default_factory=dict)  # table -> rows (would be, in a dry run)
    cutoffs: dict[str, str | None] = field(default_factory=dict)  # retention key -> ISO time, None: kept
    batches: int = 0
    seconds: float = 0.0

    def add(self, table: str, rows: int) -> None:
        self.deleted[table] = self.deleted.get(table, 0) + rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "deleted": self.deleted,
            "total": sum(self.deleted.values()),
            "cutoffs": self.cutoffs,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
        }


class _Batches:
    """Short transactions on the history's connection."""

    def __init__(self, history: History, report: PruneReport) -> None:
        self.history = history
        self.report = report

    def run(self, work: Callable[[Any], bool]) -> None:
        """Call ``work(cursor)`` in its own transaction until it reports nothing left."""
        conn = self.history._connection()
        while True:
            conn.autocommit = False
            try:
                with conn.cursor() as cur:
                    cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    more = work(cur)
                conn.commit()
            except Exception:
                conn.rollback()
                raise
            finally:
                conn.autocommit = True
            self.report.batches += 1
            if not more:
                return


def _ids(cur: Any, sql: str, params: dict[str, Any]) -> list[int]:
    cur.execute(sql, params)
    return [int(row[0]) for row in cur.fetchall()]


def _delete_children(cur: Any, ids: list[int], tables: tuple[str, ...], report: PruneReport) -> None:
    for table in tables:
        cur.execute(f"DELETE FROM {table} WHERE run_id = ANY(%s)", (ids,))
        report.add(table, cur.rowcount)


def _count(history: History, sql: str, params: dict[str, Any]) -> int:
    conn = history._connection()
    with conn.cursor() as cur:
        cur.execute(sql, params)
        found = cur.fetchone()
    return int(found[0]) if found else 0


def prune(
    history: History,
    retention: RetentionConfig,
    *,
    dry_run: bool = False,
    batch_size: int | None = None,
    now: datetime | None = None,
) -> PruneReport:
    """Delete (``dry_run``: count) the rows older than their table's retention."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    size = batch_size or retention.batch_size
    report = PruneReport(dry_run=dry_run)
    batches = _Batches(history, report)

    def cutoff(key: str) -> datetime | None:
        period: timedelta | None = retention.period(key)
        at = now - period if period is not None else None
        report.cutoffs[key] = at.isoformat() if at is not None else None
        return at

    # Runs, with every row that belongs to them.
    runs_cut = cutoff("runs")
    if runs_cut is not None:
        params = {"cutoff": runs_cut, "size": size}
        where = f"FROM kubernaut_runs r WHERE {_FINISHED_RUN}"
        if dry_run:
            report.add("kubernaut_runs", _count(history, f"SELECT count(*) {where}", params))
            for table in RUN_CHILDREN:
                sql = f"SELECT count(*) FROM {table} c WHERE c.run_id IN (SELECT r.id {where})"
                report.add(table, _count(history, sql, params))
        else:
            pick = f"SELECT r.id {where} ORDER BY r.id LIMIT %(size)s FOR UPDATE SKIP LOCKED"

            def runs_batch(cur: Any) -> bool:
                ids = _ids(cur, pick, params)
                if ids:
                    _delete_children(cur, ids, RUN_CHILDREN, report)
                    cur.execute("DELETE FROM kubernaut_runs WHERE id = ANY(%s)", (ids,))
                    report.add("kubernaut_runs", cur.rowcount)
                return len(ids) == size

            batches.run(runs_batch)

    # Steps and undo journal of finished runs kept for longer than their steps.
    steps_cut = cutoff("steps")
    if steps_cut is not None:
        params = {"cutoff": steps_cut, "size": size}
        where = f"FROM kubernaut_runs r WHERE {_FINISHED_RUN} AND {_HAS_STEPS}"
        tables = ("kubernaut_steps", "kubernaut_undo_journal")
        if dry_run:
            if runs_cut is not None:  # not those the runs rule counted already
                where += f" AND NOT ({_WITH_RUNS_CUTOFF})"
                params["runs_cutoff"] = runs_cut
            for table in tables:
                sql = f"SELECT count(*) FROM {table} c WHERE c.run_id IN (SELECT r.id {where})"
                report.add(table, _count(history, sql, params))
        else:
            pick = f"SELECT r.id {where} ORDER BY r.id LIMIT %(size)s FOR UPDATE SKIP LOCKED"

            def steps_batch(cur: Any) -> bool:
                ids = _ids(cur, pick, params)
                _delete_children(cur, ids, tables, report)
                return len(ids) == size

            batches.run(steps_batch)

    # Tables of their own age.
    for key, table, condition in _SIMPLE:
        at = cutoff(key)
        if at is None:
            continue
        params = {"cutoff": at, "size": size}
        if dry_run:
            if runs_cut is not None and table in RUN_CHILDREN:  # not those counted with their run
                condition += f" AND (t.run_id IS NULL OR t.run_id NOT IN ({_RUNS_CUT_IDS}))"
                params["runs_cutoff"] = runs_cut
            report.add(table, _count(history, f"SELECT count(*) FROM {table} t WHERE {condition}", params))
            continue
        pick = f"SELECT t.id FROM {table} t WHERE {condition} ORDER BY t.id LIMIT %(size)s {_SKIP_LOCKED}"

        def simple_batch(
            cur: Any, table: str = table, pick: str = pick, params: dict[str, Any] = params
        ) -> bool:
            ids = _ids(cur, pick, params)
            if ids:
                cur.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", (ids,))
                report.add(table, cur.rowcount)
            return len(ids) == size

        batches.run(simple_batch)
    for table in ("kubernaut_runs", *RUN_CHILDREN, "kubernaut_alert_decisions", "kubernaut_unblocks"):
        report.deleted.setdefault(table, 0)
    report.seconds = time.monotonic() - started
    return report
