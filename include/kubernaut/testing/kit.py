"""A test-kit for actions, built-in or your own: run one the way the operator does
(parameters validated, then precheck -> run -> verify), exercise its undo journal and
check that undo is idempotent. No Airflow, no cluster needed."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from kubernaut.actions.base import ACTION_KINDS, Action, ActionContext, ActionParams, ActionResult
from kubernaut.config import KubernautConfig
from kubernaut.history.store import UndoRecordConflict, check_same_undo, journal_form

ActionClass = type[Action[Any]]
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ParamsInvalid(ValueError):
    """The parameters do not validate; the message lists each field as a step error would."""


@dataclass
class UndoJournal:
    """Stands in for the operator's durable journal, with its contract: a step's first record
    is the journaled one; saving it again is fine, saving a different one raises
    ``UndoRecordConflict`` (as ``History.save_undo`` does). ``records`` lists every save, each
    as the journal would give it back (JSON round trip)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    step: str = "test-step"

    def save(self, record: dict[str, Any]) -> None:
        check_same_undo(self.step, self.record, record)
        self.records.append(journal_form(record))

    @property
    def record(self) -> dict[str, Any] | None:
        """The journaled record: what a retry gets as ``prior_undo`` and the rollback undoes."""
        return self.records[0] if self.records else None

    @property
    def last(self) -> dict[str, Any] | None:
        """The same as ``record`` (every later save must equal it)."""
        return self.record


def validate_params(action_cls: ActionClass, params: Mapping[str, Any] | ActionParams) -> ActionParams:
    if isinstance(params, ActionParams):
        return params
    try:
        return action_cls.Params.model_validate(dict(params))
    except ValidationError as exc:
        problems = "; ".join(
            f"parameters.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ParamsInvalid(f"{action_cls.kind}/{action_cls.name}: {problems}") from exc


def make_context(
    *,
    dry_run: bool = False,
    config: KubernautConfig | None = None,
    timeout: float = 30.0,
    poll_interval: float = 0.05,
    prior_undo: dict[str, Any] | None = None,
    undo_record: dict[str, Any] | None = None,
    journal: UndoJournal | None = None,
    logger: logging.Logger | None = None,
    **overrides: Any,
) -> ActionContext:
    """An ActionContext for tests; ``config`` defaults to an empty KubernautConfig (no file,
    no Airflow Variable) and ``journal`` captures the undo records the action saves."""
    return ActionContext(
        dry_run=dry_run,
        timeout=timeout,
        poll_interval=poll_interval,
        prior_undo=prior_undo,
        undo_record=undo_record,
        save_undo=journal.save if journal is not None else (lambda record: None),
        logger=logger or logging.getLogger("kubernaut.testing"),
        _config=config or KubernautConfig(),
        **overrides,
    )


def run_action(
    action_cls: ActionClass,
    params: Mapping[str, Any] | ActionParams,
    *,
    dry_run: bool = False,
    config: KubernautConfig | None = None,
    ctx: ActionContext | None = None,
    **context: Any,
) -> ActionResult:
    """Validate ``params`` and execute the action (precheck, run, and verify unless dry run)."""
    model = validate_params(action_cls, params)
    context_ = ctx or make_context(dry_run=dry_run, config=config, **context)
    return action_cls().execute(context_, model)


def run_undo(
    action_cls: ActionClass,
    params: Mapping[str, Any] | ActionParams,
    record: dict[str, Any] | ActionResult,
    *,
    config: KubernautConfig | None = None,
    ctx: ActionContext | None = None,
    **context: Any,
) -> dict[str, Any]:
    """Call the action's undo with a record (or the ``undo`` of a result)."""
    model = validate_params(action_cls, params)
    if isinstance(record, ActionResult):
        if record.undo is None:
            raise AssertionError(f"{action_cls.name}: the result has no undo record")
        record = record.undo
    context_ = ctx or make_context(config=config, undo_record=record, **context)
    return action_cls().undo(context_, model, record)


def assert_undo_idempotent(
    action_cls: ActionClass,
    params: Mapping[str, Any] | ActionParams,
    record: dict[str, Any] | ActionResult,
    *,
    config: KubernautConfig | None = None,
    state: Callable[[], Any] | None = None,
    **context: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Undo twice: both calls must succeed and, given ``state`` (a probe of what the action
    changes), the second must leave it exactly as the first did. Returns both undo outputs."""
    first = run_undo(action_cls, params, record, config=config, **context)
    after_first = state() if state is not None else None
    try:
        second = run_undo(action_cls, params, record, config=config, **context)
    except Exception as exc:
        raise AssertionError(f"{action_cls.name}: the second undo failed: {exc!r}") from exc
    if state is not None:
        after_second = state()
        assert after_second == after_first, (
            f"{action_cls.name}: the second undo changed the state again: {after_first!r} -> {after_second!r}"
        )
    return first, second


def assert_resumes_without_double_change(
    action_cls: ActionClass,
    params: Mapping[str, Any] | ActionParams,
    *,
    state: Callable[[], Any],
    config: KubernautConfig | None = None,
    **context: Any,
) -> tuple[ActionResult, ActionResult]:
    """Simulate a retry after an interruption: run once with a journal, then again with
    ``prior_undo`` set to what the first attempt saved. The retry must not change ``state``
    again and must return the same undo record."""
    journal = UndoJournal()
    first = run_action(action_cls, params, config=config, journal=journal, **context)
    assert journal.record is not None, (
        f"{action_cls.name}: a mutating run saved no undo record before changing"
    )
    before = state()
    try:  # the retry journals into the same step, as in production
        second = run_action(
            action_cls, params, config=config, prior_undo=journal.record, journal=journal, **context
        )
    except UndoRecordConflict as exc:
        raise AssertionError(
            f"{action_cls.name}: the retry did not reuse the journaled record: {exc}"
        ) from exc
    after = state()
    assert after == before, f"{action_cls.name}: the retry changed the state again: {before!r} -> {after!r}"
    assert second.undo is not None and _subset(journal.records[0], second.undo), (
        f"{action_cls.name}: the retry's undo {second.undo!r} differs from the saved {journal.records[0]!r}"
    )
    return first, second


def _subset(saved: Mapping[str, Any], final: Mapping[str, Any]) -> bool:
    # The final record may add what only the change revealed (e.g. an id), never alter the saved fields.
    return all(final.get(k) == v for k, v in saved.items())


def assert_action_contract(action_cls: ActionClass) -> None:
    """Static checks every action should pass (cheap; run it in your unit tests)."""
    problems = []
    if getattr(action_cls, "kind", None) not in ACTION_KINDS:
        problems.append(f"kind must be one of {ACTION_KINDS}")
    if not _NAME.match(getattr(action_cls, "name", "") or ""):
        problems.append("name must be snake_case (a-z, 0-9, _)")
    if not issubclass(action_cls.Params, ActionParams):
        problems.append("Params must subclass kubernaut.actions.ActionParams")
    elif action_cls.Params.model_config.get("extra") != "forbid":
        problems.append("Params must forbid unknown fields (extra='forbid')")
    if not action_cls.summary:
        problems.append("summary is empty (it is shown in the action catalogue)")
    if action_cls.mutating and action_cls.changes == "nothing":
        problems.append("a mutating action must describe what it `changes`")
    if action_cls.mutating and action_cls.has_undo() and action_cls.undo_doc == "—":
        problems.append("document the undo in `undo_doc`")
    if problems:
        raise AssertionError(f"{action_cls.__qualname__}: " + "; ".join(problems))
