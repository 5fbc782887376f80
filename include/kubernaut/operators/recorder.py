"""Where a step's progress and undo record go: the history DB, or nowhere (read-only steps
without a history DB)."""

from __future__ import annotations

from typing import Any, Protocol

from kubernaut.history import History


class StepRecorder(Protocol):
    durable: bool

    def started(self, rendered: dict[str, Any]) -> None: ...
    def prior_undo(self) -> dict[str, Any] | None: ...
    def save_undo(self, record: dict[str, Any]) -> None: ...
    def finished(self, status: str, record: dict[str, Any] | None = None, error: str = "") -> None: ...


class NullRecorder:
    durable = False

    def started(self, rendered: dict[str, Any]) -> None:
        pass

    def prior_undo(self) -> dict[str, Any] | None:
        return None

    def save_undo(self, record: dict[str, Any]) -> None:
        pass

    def finished(self, status: str, record: dict[str, Any] | None = None, error: str = "") -> None:
        pass


class HistoryRecorder:
    durable = True

    def __init__(self, history: History, run_id: int, step: str, action: str, rollback_mode: str) -> None:
        self.history, self.run_id, self.step = history, run_id, step
        self.action, self.rollback_mode = action, rollback_mode
        self._rendered: dict[str, Any] = {}

    def started(self, rendered: dict[str, Any]) -> None:
        self._rendered = rendered
        self.history.step_started(self.run_id, self.step, self.action, rendered)

    def prior_undo(self) -> dict[str, Any] | None:
        return self.history.undo_record(self.run_id, self.step)

    def save_undo(self, record: dict[str, Any]) -> None:
        self.history.save_undo(
            self.run_id, self.step, self.action, self._rendered, record, rollback_mode=self.rollback_mode
        )

    def finished(self, status: str, record: dict[str, Any] | None = None, error: str = "") -> None:
        self.history.step_finished(self.run_id, self.step, status, record, error, action=self.action)
