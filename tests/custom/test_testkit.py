"""The test-kit on a sample custom action, including one registered through an entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubernaut.actions import ActionContext, ActionRegistry, PreconditionFailed, registry
from kubernaut.testing import (
    ParamsInvalid,
    UndoJournal,
    UndoRecordConflict,
    assert_action_contract,
    assert_resumes_without_double_change,
    assert_undo_idempotent,
    run_action,
)
from tests.custom.sample_actions import SetFlag


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"checkout_v2": False}))
    return path


def flags(store: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(store.read_text())
    return data


def params(store: Path) -> dict[str, Any]:
    return {"store": str(store), "flag": "checkout_v2", "value": True}


def test_run_action_validates_and_runs(store: Path) -> None:
    result = run_action(SetFlag, params(store))
    assert result.changed and result.undo == {"flag": "checkout_v2", "previous": False}
    assert flags(store) == {"checkout_v2": True}
    with pytest.raises(ParamsInvalid, match=r"parameters.flag: String should match pattern"):
        run_action(SetFlag, {**params(store), "flag": "Bad Flag"})
    with pytest.raises(ParamsInvalid, match=r"parameters.extra: Extra inputs"):
        run_action(SetFlag, {**params(store), "extra": 1})
    with pytest.raises(PreconditionFailed):
        run_action(SetFlag, {**params(store), "store": str(store.with_name("missing.json"))})


def test_dry_run_and_journal(store: Path, action_context: Any, undo_journal: UndoJournal) -> None:
    result = run_action(SetFlag, params(store), ctx=action_context(dry_run=True))
    assert not result.changed and flags(store) == {"checkout_v2": False} and undo_journal.records == []
    run_action(SetFlag, params(store), ctx=action_context())
    assert undo_journal.last == {"flag": "checkout_v2", "previous": False}


def test_assert_undo_idempotent(store: Path) -> None:
    result = run_action(SetFlag, params(store))
    first, second = assert_undo_idempotent(SetFlag, params(store), result, state=lambda: flags(store))
    assert first == {"restored": True} and second == {"restored": False}
    assert flags(store) == {"checkout_v2": False}


def test_assert_undo_idempotent_catches_a_non_idempotent_undo(store: Path) -> None:
    class Toggle(SetFlag):
        name = "acme_toggle"

        def undo(self, ctx: ActionContext, params: Any, record: dict[str, Any]) -> dict[str, Any]:
            data = flags(Path(params.store))
            data[record["flag"]] = not data[record["flag"]]  # flips on every call: not idempotent
            Path(params.store).write_text(json.dumps(data))
            return {}

    result = run_action(Toggle, params(store))
    with pytest.raises(AssertionError, match="second undo changed the state again"):
        assert_undo_idempotent(Toggle, params(store), result, state=lambda: flags(store))


def test_resume_after_interruption(store: Path) -> None:
    before = SetFlag.writes
    first, second = assert_resumes_without_double_change(SetFlag, params(store), state=lambda: flags(store))
    assert SetFlag.writes == before + 1 and second.output == {"already_done": True}
    assert second.undo == first.undo


def test_resume_check_catches_a_double_change(store: Path) -> None:
    class Counting(SetFlag):
        name = "acme_counting"

        def run(self, ctx: ActionContext, params: Any) -> Any:
            data = flags(Path(params.store))  # a side change made on every attempt, journal or not
            data["count"] = data.get("count", 0) + 1
            Path(params.store).write_text(json.dumps(data))
            return super().run(ctx, params)

    with pytest.raises(AssertionError, match="the retry changed the state again"):
        assert_resumes_without_double_change(Counting, params(store), state=lambda: flags(store))


def test_resume_check_catches_a_retry_that_ignores_the_journal(store: Path) -> None:
    class Forgetful(SetFlag):
        name = "acme_forgetful"

        def run(self, ctx: ActionContext, params: Any) -> Any:
            ctx.prior_undo = None  # ignores the journal: would record the changed value as "previous"
            return super().run(ctx, params)

    with pytest.raises(AssertionError, match=r"retry did not reuse the journaled record.*\(in previous\)"):
        assert_resumes_without_double_change(Forgetful, params(store), state=lambda: flags(store))
    assert flags(store) == {"checkout_v2": True}  # refused before its second write, as in production


def test_undo_journal_keeps_the_first_record_and_refuses_another() -> None:
    journal = UndoJournal(step="rotate")
    journal.save({"data": {"k": "djE="}, "restarted": {"Deployment/api": None}, "at": (1, 2)})
    journal.save({"data": {"k": "djE="}, "restarted": {"Deployment/api": None}, "at": [1, 2]})  # same record
    assert (
        journal.record
        == journal.last
        == {"data": {"k": "djE="}, "restarted": {"Deployment/api": None}, "at": [1, 2]}
    )
    with pytest.raises(UndoRecordConflict, match=r"step 'rotate'.*\(in restarted\)"):
        journal.save(
            {"data": {"k": "djE="}, "restarted": {"Deployment/api": "2024-01-01T00:00:00Z"}, "at": [1, 2]}
        )
    assert len(journal.records) == 2 and journal.record["restarted"] == {"Deployment/api": None}


def test_contract_checks() -> None:
    assert_action_contract(SetFlag)
    for cls in registry.all():
        assert_action_contract(cls)

    class Sloppy(SetFlag):
        name = "Sloppy-Name"
        summary = ""
        changes = "nothing"

    with pytest.raises(AssertionError, match=r"snake_case.*summary is empty.*describe what it `changes`"):
        assert_action_contract(Sloppy)


def test_action_registered_through_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Path
) -> None:
    # An installed distribution declaring [project.entry-points."kubernaut.actions"].
    dist = tmp_path / "acme_flags-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-flags\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[kubernaut.actions]\nacme_set_flag = tests.custom.sample_actions:SetFlag\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = ActionRegistry(builtin_modules=()).get("custom", "acme_set_flag")
    assert cls is SetFlag
    result = run_action(cls, params(store))
    assert_undo_idempotent(cls, params(store), result, state=lambda: flags(store))
    assert flags(store) == {"checkout_v2": False}
