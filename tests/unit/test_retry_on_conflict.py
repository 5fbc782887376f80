"""retry_on_conflict: 409s are retried after bounded, growing, jittered waits; other errors are not."""

from __future__ import annotations

import random

import pytest

from kubernaut.actions.base import ActionError
from kubernaut.kube.errors import Conflict, backoff_delay, retry_on_conflict


class Flaky:
    """Raises Conflict ``conflicts`` times, then returns "done"."""

    def __init__(self, conflicts: int) -> None:
        self.conflicts, self.calls = conflicts, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.conflicts:
            raise Conflict(f"deployment demo/web: conflict #{self.calls}")
        return "done"


def test_conflicts_are_retried_after_growing_waits() -> None:
    sleeps: list[float] = []
    fn = Flaky(conflicts=3)
    # jitter() == 1.0 shows the upper bound of each wait: base * 2**retry.
    assert retry_on_conflict(fn, sleep=sleeps.append, jitter=lambda: 1.0) == "done"
    assert fn.calls == 4
    assert sleeps == pytest.approx([0.05, 0.1, 0.2])


def test_gives_up_after_the_attempts_with_capped_waits() -> None:
    sleeps: list[float] = []
    fn = Flaky(conflicts=100)
    with pytest.raises(Conflict, match="conflict #7"):
        retry_on_conflict(fn, attempts=7, sleep=sleeps.append, jitter=lambda: 1.0)
    assert fn.calls == 7 and len(sleeps) == 6  # no wait after the last attempt
    assert sleeps == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0])  # capped at 1 s


def test_full_jitter_stays_within_the_bounds() -> None:
    sleeps: list[float] = []
    rng = random.Random(7)
    with pytest.raises(Conflict):
        retry_on_conflict(Flaky(conflicts=100), attempts=9, sleep=sleeps.append, jitter=rng.random)
    assert len(sleeps) == 8
    assert all(0.0 <= s < backoff_delay(i) for i, s in enumerate(sleeps))
    assert len(set(sleeps)) == len(sleeps)  # jittered: colliding writers do not retry in lock step


def test_other_errors_are_not_retried_and_attempts_are_checked() -> None:
    sleeps: list[float] = []
    calls = []

    def denied() -> None:
        calls.append(1)
        raise ActionError("deployment demo/web: access denied (403)")

    with pytest.raises(ActionError, match="access denied"):
        retry_on_conflict(denied, sleep=sleeps.append)
    assert calls == [1] and sleeps == []
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        retry_on_conflict(Flaky(0), attempts=0)
