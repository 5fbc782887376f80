"""History queries the intake needs beyond ``History``: launch records (a ``triggering`` row is
written before the POST that creates the run), and a per-target claim so concurrent webhooks
(coroutines, api-server workers, ``kubernaut serve`` replicas) launch at most one run per target.

The claim is a transaction holding ``pg_try_advisory_xact_lock``: it never waits (a target
whose lock is taken is busy *now*), and it lasts only for the few queries that decide and
write the ``triggering`` row; no lock is held while Airflow is called.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from kubernaut.history import History

_LOCK_CLASS = 0x6B76  # advisory lock namespace for intake decisions (History uses 0x6B75 for runs)
# Decision rows that stand for a launch: confirmed, in flight, or requested without an answer.
LAUNCH_RECORDS = ("triggered", "triggering", "unconfirmed")
STATEMENT_TIMEOUT_MS = 5000  # a sick database answers 503 quickly instead of pinning the intake


class IntakeHistory(History):
    """Decision rows that launch nothing are committed asynchronously (``synchronous_commit``
    off: no WAL flush wait, ~3 ms less per webhook; a PostgreSQL crash may lose the last
    fraction of a second of them). The claim, which writes the launch record before the POST,
    commits durably."""

    def _connection(self) -> Any:
        fresh = self._conn is None or getattr(self._conn, "closed", False)
        conn = super()._connection()
        if fresh:
            with conn.cursor() as cur:
                cur.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
                cur.execute("SET synchronous_commit = off")
        return conn

    def ping(self) -> None:
        """Connect (and check the connection) ahead of the first alert."""
        self._query("SELECT 1")

    def recent_launches(self, namespace: str, name: str, since: datetime) -> list[dict[str, Any]]:
        """Launches (confirmed, in flight or unconfirmed) for the target since ``since``, with the
        run's status if it has recorded itself (None while still queued)."""
        return self._query(
            """
            SELECT d.template, d.dag_id, d.dag_run_id, d.decision, d.received_at, r.status AS run_status
              FROM kubernaut_alert_decisions d
              LEFT JOIN kubernaut_runs r ON r.dag_id = d.dag_id AND r.dag_run_id = d.dag_run_id
             WHERE d.decision = ANY(%s) AND d.target_namespace = %s AND d.target_name = %s
               AND d.received_at >= %s
             ORDER BY d.received_at DESC LIMIT 50
            """,
            (list(LAUNCH_RECORDS), namespace, name, since),
        )

    def launch_of(self, dag_id: str, dag_run_id: str) -> dict[str, Any] | None:
        """The launch record of this run id (a confirmed one first), its age in seconds, and the
        run's status if the run has recorded itself."""
        return self._one(
            """
            SELECT d.id, d.decision, d.reason, d.received_at,
                   extract(epoch FROM now() - d.received_at)::float AS age_s, r.status AS run_status
              FROM kubernaut_alert_decisions d
              LEFT JOIN kubernaut_runs r ON r.dag_id = d.dag_id AND r.dag_run_id = d.dag_run_id
             WHERE d.dag_id = %s AND d.dag_run_id = %s AND d.decision = ANY(%s)
             ORDER BY d.decision = 'triggered' DESC, d.id LIMIT 1
            """,
            (dag_id, dag_run_id, list(LAUNCH_RECORDS)),
        )

    @contextmanager
    def target_claim(self, namespace: str, name: str) -> Iterator[bool]:
        """A transaction that tries the target's lock: yields whether it was acquired (never
        waits). What is written inside commits at exit; the lock goes with the transaction."""
        conn = self._connection()
        conn.autocommit = False
        done = False
        try:
            row = self._one(
                "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s)) AS got",
                (_LOCK_CLASS, f"{namespace}/{name}"),
            )
            yield bool(row and row["got"])
            done = True
        finally:
            if self._conn is conn and not conn.closed:  # _query closes a connection that failed
                try:
                    conn.commit() if done else conn.rollback()
                except Exception:
                    self.close()
                    raise
                finally:
                    if not conn.closed:
                        conn.autocommit = True

    def insert_decision(self, **fields: Any) -> int:
        """``record_decision`` that returns the row id (to settle a launch record later)."""
        target = fields.get("target") or {}
        if fields["decision"] in LAUNCH_RECORDS and not self._connection().autocommit:
            self._query("SET LOCAL synchronous_commit = on")  # written before the POST: must survive a crash
        row = self._one(
            """
            INSERT INTO kubernaut_alert_decisions (fingerprint, alert_name, alert_status, decision, reason,
                template, dag_id, dag_run_id, target_kind, target_namespace, target_name, labels)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
            RETURNING id
            """,
            (
                fields["fingerprint"],
                fields["alert_name"],
                fields["alert_status"],
                fields["decision"],
                fields["reason"],
                fields.get("template", ""),
                fields.get("dag_id", ""),
                fields.get("dag_run_id", ""),
                target.get("kind", ""),
                target.get("namespace", ""),
                target.get("name", ""),
                _labels_json(fields.get("labels")),
            ),
        )
        assert row is not None
        return int(row["id"])

    def settle_launch(self, row_id: int, decision: str, reason: str) -> None:
        """The outcome of a launch record once Airflow answered (or did not)."""
        self._query(
            "UPDATE kubernaut_alert_decisions SET decision = %s, reason = %s WHERE id = %s",
            (decision, reason, row_id),
        )

    def take_over_launch(self, row_id: int, reason: str, in_flight_seconds: float) -> bool:
        """Claim an unconfirmed launch (or one in flight for too long) to confirm it; only one
        delivery wins (a second would only repeat the idempotent POST)."""
        row = self._one(
            """
            UPDATE kubernaut_alert_decisions SET decision = 'triggering', reason = %s
             WHERE id = %s AND (decision = 'unconfirmed'
                   OR (decision = 'triggering' AND received_at < now() - make_interval(secs => %s)))
            RETURNING id
            """,
            (reason, row_id, in_flight_seconds),
        )
        return row is not None


def _labels_json(labels: Any) -> str:
    return json.dumps(dict(labels or {}), default=str, sort_keys=True)
