"""Polling until a condition holds: the rules every wait follows, and the blocking loop.

The rules (how long to pause between polls, how a wait that ran out is worded) are shared by
the triggers' loop (``kubernaut.waits.driver.run_wait``, async, in the triggerer) and the
blocking loop here (``poll_until``), so a step's confirmation and a deferred wait behave alike.

The blocking loop is only for short read-after-write confirmations (a cordon, a taint, an HPA's
bounds, a patch) and for undo in the rollback task. A step that waits for something to happen
(a rollout, pod health, a metric, an alert) returns a ``kubernaut.waits.WaitSpec`` from ``run``
instead, so the wait can run in the triggerer without holding a worker slot."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeVar

from kubernaut.kube.errors import NotReady

T = TypeVar("T")
Wording = Literal["reached", "holds"]

GROWTH = 1.5  # each pause is this much longer than the last, up to the wait's max_poll
MIN_PAUSE = 0.05  # seconds: never busy-poll, even right before the deadline


def next_pause(pause: float, ceiling: float) -> float:
    """The pause after ``pause``: longer by GROWTH, never above ``ceiling``."""
    return min(ceiling, pause * GROWTH)


def pause_before(pause: float, remaining: float) -> float:
    """How long to sleep now: the pause, cut to what is left (but at least MIN_PAUSE)."""
    return min(pause, max(MIN_PAUSE, remaining))


def timeout_message(what: str, span: float, last: Any, wording: Wording = "reached") -> str:
    """How a wait that ran out of time is reported, with what was seen last."""
    if wording == "holds":
        within = f" within {round(span, 1):g}s" if span > 0 else ""
        return f"{what} does not hold{within}: {last}"
    return f"{what} not reached within {span:.0f}s; last seen: {last}"


def poll_until(
    check: Callable[[], tuple[bool, T]],
    *,
    what: str,
    within: float,
    poll: float,
    max_poll: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``check`` until it returns (True, value), at least once; after ``within`` seconds
    raise NotReady with the last value. An exception from ``check`` ends the wait as it is."""
    deadline = clock() + within
    pause, ceiling = poll, max(poll, max_poll or poll)
    while True:
        ok, value = check()
        if ok:
            return value
        now = clock()
        if now >= deadline:
            raise NotReady(timeout_message(what, within, value))
        sleep(pause_before(pause, deadline - now))
        pause = next_pause(pause, ceiling)


class StepTime(Protocol):
    """What ``wait_for`` needs of a step: its time left and its poll interval."""

    poll_interval: float

    def remaining(self) -> float: ...


def wait_for(
    ctx: StepTime,
    check: Callable[[], tuple[bool, T]],
    *,
    what: str,
    timeout: float | None = None,
) -> T:
    """``poll_until`` bounded by ``timeout`` and the step's remaining time. Raises NotReady (the
    actions layer reports it as VerificationFailed) with the last value."""
    limit = ctx.remaining() if timeout is None else min(timeout, ctx.remaining())
    return poll_until(check, what=what, within=limit, poll=ctx.poll_interval)
