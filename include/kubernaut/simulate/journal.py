"""The undo journal of a simulated run, in memory, with the production journal's contract.

``MemoryHistory`` answers the calls the step runner's ``HistoryRecorder`` and
``kubernaut.rollback.rollback_run`` make of ``History`` (steps started and finished, the undo
journal, its rollback order and marks), so a simulated run journals and rolls back through
the same code as a run in Airflow, without PostgreSQL. The rest of ``History`` is not
available here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from kubernaut.history.store import History, JournalEntry, check_same_undo, journal_form


class MemoryHistory(History):
    def __init__(self) -> None:
        super().__init__("simulate", connect=self._no_database)
        self._lock = threading.Lock()
        self.steps: dict[tuple[int, str], dict[str, Any]] = {}
        self.entries: list[dict[str, Any]] = []
        self._clock = 0

    @staticmethod
    def _no_database() -> Any:
        raise RuntimeError("the simulated run keeps its journal in memory; no history database")

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def step_started(self, run_id: int, step: str, action: str, parameters: Mapping[str, Any]) -> None:
        row = self.steps.setdefault((run_id, step), {"attempts": 0})
        row.update(
            action=action, parameters=journal_form(parameters), status="running", attempts=row["attempts"] + 1
        )

    def step_finished(
        self, run_id: int, step: str, status: str, result: Any = None, error: str = "", action: str = ""
    ) -> None:
        row = self.steps.setdefault((run_id, step), {"attempts": 1, "action": action})
        row.update(status=status, result=result, error=error, finished=self._tick())

    def save_undo(
        self,
        run_id: int,
        step: str,
        action: str,
        parameters: Mapping[str, Any],
        prior_state: Mapping[str, Any],
        rollback_mode: str = "undo",
    ) -> None:
        existing = self.undo_record(run_id, step)
        if existing is not None:
            check_same_undo(step, existing, prior_state)
            return
        self.entries.append(
            {
                "id": len(self.entries) + 1,
                "run_id": run_id,
                "step": step,
                "action": action,
                "parameters": journal_form(parameters),
                "prior_state": journal_form(prior_state),
                "rollback_mode": rollback_mode,
                "undo_status": "pending",
                "undo_attempts": 0,
                "undo_result": None,
                "recorded": self._tick(),
            }
        )

    def undo_record(self, run_id: int, step: str) -> dict[str, Any] | None:
        for entry in self.entries:
            if entry["run_id"] == run_id and entry["step"] == step:
                return dict(entry["prior_state"])
        return None

    def journal(self, run_id: int) -> list[JournalEntry]:
        def completed(entry: dict[str, Any]) -> int:
            return int(self.steps.get((run_id, entry["step"]), {}).get("finished") or entry["recorded"])

        mine = [e for e in self.entries if e["run_id"] == run_id]
        mine.sort(key=lambda e: (completed(e), e["id"]), reverse=True)
        return [
            JournalEntry(
                id=e["id"],
                step=e["step"],
                action=e["action"],
                parameters=dict(e["parameters"]),
                prior_state=dict(e["prior_state"]),
                rollback_mode=e["rollback_mode"],
                undo_status=e["undo_status"],
                undo_attempts=e["undo_attempts"],
                completed_at=datetime.fromtimestamp(completed(e), UTC),
            )
            for e in mine
        ]

    def mark_undo(self, entry_id: int, status: str, result: Any) -> None:
        for entry in self.entries:
            if entry["id"] == entry_id:
                entry.update(undo_status=status, undo_result=journal_form({"r": result})["r"])
                entry["undo_attempts"] += 1

    @contextmanager
    def run_lock(self, run_id: int) -> Iterator[None]:
        with self._lock:
            yield

    def close(self) -> None:
        pass
