"""The one wait loop (``run_wait``) and the wait's serialised forms, with a scripted poll
function standing in for a wait kind (no cluster needed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kubernaut.actions.base import ActionError, ActionResult, VerificationFailed, wait_error
from kubernaut.waits import driver
from kubernaut.waits.clients import RetryableWaitError, WaitClients
from kubernaut.waits.spec import Done, Failed, Pending, WaitOutcome, WaitSpec, WaitSpecError

# What the scripted poll answers, one item per poll (an exception is raised).
SCRIPT: list[Any] = []


async def scripted(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> Any:
    memo["polls"] = memo.get("polls", 0) + 1
    item = SCRIPT.pop(0) if SCRIPT else Pending("still nothing")
    if isinstance(item, BaseException):
        raise item
    return item


@pytest.fixture(autouse=True)
def scripted_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(driver.KINDS, "scripted", f"{__name__}:scripted")
    SCRIPT.clear()
    yield
    SCRIPT.clear()


class FakeTime:
    """A clock that only moves when the wait sleeps; records each pause."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(round(seconds, 3))
        self.now += seconds


def spec(seconds: float, **kw: Any) -> WaitSpec:
    fields: dict[str, Any] = {"what": "the thing", "poll": 1.0, **kw}
    return WaitSpec("scripted", {}, deadline=1_000.0 + seconds, started=1_000.0, **fields)


def run(wait: WaitSpec, fake: FakeTime) -> WaitOutcome:
    clients = WaitClients.in_process("kubernetes_default")
    return asyncio.run(driver.run_wait(wait, clients, clock=fake.clock, sleep=fake.sleep))


def test_polls_until_done_with_growing_pauses_up_to_max_poll() -> None:
    fake = FakeTime()
    SCRIPT.extend([Pending(1), Pending(2), Pending(3), Pending(4), Done({"ok": True})])
    outcome = run(spec(60, max_poll=3.0), fake)
    assert outcome == WaitOutcome("done", "", {"ok": True}, polls=5, waited=sum(fake.pauses))
    assert fake.pauses == [1.0, 1.5, 2.25, 3.0]


def test_timeout_names_the_wait_and_what_was_seen_last() -> None:
    fake = FakeTime()
    SCRIPT.extend([Pending({"ready": 0}), Pending({"ready": 1})])
    outcome = run(spec(2), fake)
    assert outcome.status == "timeout" and outcome.detail == "still nothing"
    assert outcome.message == "the thing not reached within 2s; last seen: still nothing"
    assert fake.now == 1_002.0  # the last pause ends exactly at the deadline, then one last look
    SCRIPT.extend([Pending("1 of 2 samples not < 0.5")])
    held = run(spec(0, wording="holds"), FakeTime())
    assert held.message == "the thing does not hold: 1 of 2 samples not < 0.5" and held.polls == 1


def test_a_poll_that_cannot_look_is_retried_until_the_deadline() -> None:
    fake = FakeTime()
    SCRIPT.extend([RetryableWaitError("API server unreachable"), Done("there")])
    assert run(spec(10), fake).status == "done"
    # Still unreachable at the deadline: an error naming why, not a timeout.
    SCRIPT.extend([RetryableWaitError("API server unreachable")] * 20)
    outcome = run(spec(3), FakeTime())
    assert outcome.status == "error" and outcome.message == "the thing: API server unreachable"


def test_a_failing_poll_or_a_definite_no_ends_the_wait_at_once() -> None:
    SCRIPT.extend([ActionError("deployment demo/x not found")])
    outcome = run(spec(60), FakeTime())
    assert (outcome.status, outcome.message, outcome.polls) == (
        "error",
        "the thing: deployment demo/x not found",
        1,
    )
    SCRIPT.extend([Pending(1), Failed("OOMKilled again", {"pod": "p"})])
    outcome = run(spec(60), FakeTime())
    assert (outcome.status, outcome.message, outcome.detail, outcome.polls) == (
        "failed",
        "OOMKilled again",
        {"pod": "p"},
        2,
    )


def test_a_hung_poll_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    async def hangs(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> Any:
        await asyncio.sleep(3600)

    monkeypatch.setattr(driver, "poll_function", lambda kind: hangs)
    wait = WaitSpec("scripted", {}, deadline=time.time() - 10, what="the thing")  # budget: the 5 s floor
    started = time.monotonic()
    outcome = asyncio.run(driver.run_wait(wait, WaitClients.in_process("k")))
    assert outcome.status == "error" and "no answer within 5s" in outcome.message
    assert time.monotonic() - started < 8


def test_unknown_kind_is_an_error_naming_the_known_ones() -> None:
    outcome = asyncio.run(driver.run_wait(WaitSpec("nope", {}, deadline=0), WaitClients.in_process("k")))
    assert (
        outcome.status == "error"
        and "unknown wait 'nope'" in outcome.message
        and "rollout" in outcome.message
    )


def test_wait_spec_round_trip_and_bad_input() -> None:
    wait = WaitSpec(
        "rollout", {"targets": []}, deadline=123.5, poll=0.5, max_poll=4, what="w", wording="holds"
    )
    assert WaitSpec.from_dict(wait.to_dict()) == wait
    with pytest.raises(WaitSpecError, match=r"wait\.deadline: expected a number of seconds, got 'soon'"):
        WaitSpec.from_dict({**wait.to_dict(), "deadline": "soon"})
    with pytest.raises(WaitSpecError, match=r"wait\.poll: must be positive"):
        WaitSpec.from_dict({**wait.to_dict(), "poll": 0})
    with pytest.raises(WaitSpecError, match=r"wait: unknown field\(s\) extra"):
        WaitSpec.from_dict({**wait.to_dict(), "extra": 1})
    with pytest.raises(WaitSpecError, match=r"wait\.args: expected an object"):
        WaitSpec.from_dict({**wait.to_dict(), "args": []})


def test_outcome_event_round_trip_and_the_errors_a_step_fails_with() -> None:
    outcome = WaitOutcome("timeout", "x not reached within 5s; last seen: 1", 1, polls=3, waited=5.0)
    assert WaitOutcome.from_event(outcome.to_event()) == outcome
    with pytest.raises(
        WaitSpecError, match=r"wait event\.status: expected one of done, failed, timeout, error"
    ):
        WaitOutcome.from_event({"status": "maybe"})
    assert isinstance(wait_error(outcome), VerificationFailed)
    error = wait_error(WaitOutcome("error", "w: deployment demo/x not found"))
    assert type(error) is ActionError and str(error) == "w: deployment demo/x not found"
    assert ActionResult.from_dict(ActionResult({"a": 1}, {"u": 2}, True).to_dict()) == ActionResult(
        {"a": 1}, {"u": 2}, True
    )


def test_expired_credentials_rebuild_the_kubernetes_client() -> None:
    class Counting(WaitClients):
        resets = 0

        async def reset_kube(self) -> None:
            type(self).resets += 1
            await super().reset_kube()

    fake = FakeTime()
    SCRIPT.extend([RetryableWaitError("pod demo/p: API error 401: Unauthorized", status=401), Done("ok")])
    clients = Counting("kubernetes_default", WaitClients.in_process("k")._resolve_endpoint)
    outcome = asyncio.run(driver.run_wait(spec(30), clients, clock=fake.clock, sleep=fake.sleep))
    assert outcome.status == "done" and Counting.resets == 1
    SCRIPT.extend([RetryableWaitError("API server unreachable"), Done("ok")])
    asyncio.run(driver.run_wait(spec(30), clients, clock=fake.clock, sleep=fake.sleep))
    assert Counting.resets == 1  # only a 401 does


def test_the_wait_action_pauses_in_the_trigger_for_its_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernaut.actions import ActionContext, registry
    from kubernaut.triggers.wait import StepWaitTrigger
    from tests.triggers.conftest import as_stored, fire

    cls = registry.get("custom", "wait")
    result = cls().start(ActionContext(timeout=10), cls.Params.model_validate({"duration": "700ms"}))
    assert result.wait is not None and result.wait.kind == "timer"
    started = time.monotonic()
    event = fire(as_stored(StepWaitTrigger(wait=result.wait.to_dict())))
    assert event["status"] == "done" and event["polls"] == 2  # one look, one pause, done
    assert 0.6 <= time.monotonic() - started < 2


def test_a_trigger_never_fires_before_the_settle_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """apache/airflow#67287: a task resumed before the scheduler has seen the exit of the process
    that deferred it is failed by Airflow; a wait already over must still not fire at once."""
    from kubernaut.actions import ActionContext, registry
    from kubernaut.triggers import SETTLE_SECONDS
    from kubernaut.triggers.wait import StepWaitTrigger
    from tests.triggers.conftest import as_stored, fire

    monkeypatch.setattr("kubernaut.triggers.wait.SETTLE_SECONDS", SETTLE_SECONDS)  # undo no_settle
    cls = registry.get("custom", "wait")
    result = cls().start(ActionContext(timeout=10), cls.Params.model_validate({"duration": "0s"}))
    assert result.wait is not None
    started = time.monotonic()
    event = fire(as_stored(StepWaitTrigger(wait=result.wait.to_dict())))
    assert event["status"] == "done"
    assert time.monotonic() - started >= SETTLE_SECONDS >= 3
