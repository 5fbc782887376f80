"""History queries the intake needs beyond ``History``: launches not yet visible as runs, and a
per-target lock so concurrent webhooks (threads or api-server workers) decide one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from kubernaut.history import History

_LOCK_CLASS = 0x6B76  # advisory lock namespace for intake decisions (History uses 0x6B75 for runs)


class IntakeHistory(History):
    def recent_launches(self, namespace: str, name: str, since: datetime) -> list[dict[str, Any]]:
        """Runs the intake launched for the target since ``since``, with the run's status if it
        has recorded itself (None while still queued)."""
        return self._query(
            """
            SELECT d.template, d.dag_id, d.dag_run_id, d.received_at, r.status AS run_status
              FROM kubernaut_alert_decisions d
              LEFT JOIN kubernaut_runs r ON r.dag_id = d.dag_id AND r.dag_run_id = d.dag_run_id
             WHERE d.decision = 'triggered' AND d.target_namespace = %s AND d.target_name = %s
               AND d.received_at >= %s
             ORDER BY d.received_at DESC LIMIT 50
            """,
            (namespace, name, since),
        )

    @contextmanager
    def target_lock(self, namespace: str, name: str) -> Iterator[None]:
        """Session advisory lock on this connection; released on exit or if the process dies."""
        key = f"{namespace}/{name}"
        self._query("SELECT pg_advisory_lock(%s, hashtext(%s))", (_LOCK_CLASS, key))
        try:
            yield
        finally:
            self._query("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_LOCK_CLASS, key))
