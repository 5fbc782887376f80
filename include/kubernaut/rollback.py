"""Undo a failed run: every journaled change, most recently completed first, exactly once.

Exactly once across every path that may call this (the DAG's rollback task, a task
failure callback firing twice or early, a retried rollback task): a per-run advisory
lock serializes them, and each journal entry is marked when undone, so a second pass
finds nothing left to do. A failed undo does not stop the others; it is recorded.
An undo that cannot bring the prior state back (``NotRestorable``, or an action without an
undo and no ``rollback:`` action in the template) is recorded ``not_restorable`` with its
reason, never counted as undone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernaut.actions.base import ActionContext, NotRestorable
from kubernaut.actions.registry import ActionRegistry, registry
from kubernaut.history import History, JournalEntry
from kubernaut.rendering import render_value
from kubernaut.secrets import reveal

# Final journal statuses: a later pass leaves these alone (a failed undo is tried again).
DONE = ("applied", "skipped", "not_restorable")


@dataclass
class RollbackItem:
    step: str
    action: str
    status: str  # applied | skipped | not_restorable | failed
    result: Any = None
    earlier: bool = False  # settled by an earlier pass (failure callback, earlier try)


@dataclass
class RollbackReport:
    items: list[RollbackItem] = field(default_factory=list)

    @property
    def failed(self) -> list[RollbackItem]:
        return [i for i in self.items if i.status == "failed"]

    @property
    def not_restorable(self) -> list[RollbackItem]:
        return [i for i in self.items if i.status == "not_restorable"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "undone": [i.step for i in self.items if i.status == "applied"],
            "items": [i.__dict__ for i in self.items],
            "failed": [i.step for i in self.failed],
            "not_restorable": [i.step for i in self.not_restorable],
        }


def _undo_one(
    entry: JournalEntry,
    rollback: Mapping[str, Any],
    ctx: ActionContext,
    render_context: Mapping[str, Any],
    actions: ActionRegistry,
) -> Any:
    """The undo's result; raises NotRestorable when nothing can bring the prior state back."""
    kind, name = entry.action.split("/", 1)
    parameters, prior_state = reveal(entry.parameters, entry.prior_state)  # sensitive() steps: decrypt
    if entry.rollback_mode == "action":
        # An explicit `rollback:` action gets the step's undo record and, unless it declares
        # its own, the step's rendered parameters.
        rb_kind = str(rollback.get("type") or kind)
        rb_cls = actions.get(rb_kind, str(rollback["action"]))
        raw = rollback.get("parameters")
        params = render_value(raw, render_context) if raw is not None else parameters
        ctx.undo_record = prior_state
        return rb_cls().execute(ctx, rb_cls.Params.model_validate(params)).output
    action_cls = actions.get(kind, name)
    if not action_cls.has_undo():
        raise NotRestorable(
            f"{entry.action} has no undo and the template declares no `rollback:` action for this step"
        )
    return action_cls().undo(ctx, action_cls.Params.model_validate(parameters), prior_state)


def rollback_run(
    history: History,
    run_id: int,
    rollbacks: Mapping[str, Mapping[str, Any]],
    make_context: Callable[[], ActionContext],
    render_contexts: Callable[[str], Mapping[str, Any]],
    logger: logging.Logger | Any,
    actions: ActionRegistry = registry,
) -> RollbackReport:
    """``rollbacks``: step name -> its rollback spec (``{"mode": "undo"|"action"|"none", ...}``);
    ``render_contexts``: step name -> the rendering context that step had."""
    report = RollbackReport()
    with history.run_lock(run_id):
        for entry in history.journal(run_id):
            if entry.undo_status in DONE:
                report.items.append(RollbackItem(entry.step, entry.action, entry.undo_status, earlier=True))
                continue
            spec = rollbacks.get(entry.step, {"mode": entry.rollback_mode})
            if entry.rollback_mode == "none":
                result = {"reason": "rollback: none declared for this step; the change stays"}
                history.mark_undo(entry.id, "skipped", result)
                report.items.append(RollbackItem(entry.step, entry.action, "skipped", result))
                continue
            try:
                result = _undo_one(entry, spec, make_context(), render_contexts(entry.step), actions)
            except NotRestorable as exc:
                logger.warning("kubernaut: step %s cannot be undone: %s", entry.step, exc)
                reason = {"reason": str(exc)}
                history.mark_undo(entry.id, "not_restorable", reason)
                report.items.append(RollbackItem(entry.step, entry.action, "not_restorable", reason))
                continue
            except Exception as exc:
                logger.error("kubernaut: undo of step %s failed: %s", entry.step, exc)
                error = {"error": f"{type(exc).__name__}: {exc}"}
                history.mark_undo(entry.id, "failed", error)
                report.items.append(RollbackItem(entry.step, entry.action, "failed", error))
                continue
            history.mark_undo(entry.id, "applied", result)
            logger.info("kubernaut: undid step %s (%s): %s", entry.step, entry.action, result)
            report.items.append(RollbackItem(entry.step, entry.action, "applied", result))
    return report
