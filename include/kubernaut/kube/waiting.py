"""Polling until a condition holds, bounded by the step's remaining time, in the step's process.

Only for short read-after-write confirmations (a cordon, a taint, an HPA's bounds, a patch) and
for undo in the rollback task. A step that waits for something to happen (a rollout, pod
health, a metric, an alert) returns a ``kubernaut.waits.WaitSpec`` from ``run`` instead, so the
wait can run in the triggerer without holding a worker slot."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from kubernaut.actions.base import ActionContext, VerificationFailed

T = TypeVar("T")


def wait_for(
    ctx: ActionContext,
    check: Callable[[], tuple[bool, T]],
    *,
    what: str,
    timeout: float | None = None,
) -> T:
    """Call ``check`` until it returns (True, value); raise VerificationFailed with the last value."""
    limit = ctx.remaining() if timeout is None else min(timeout, ctx.remaining())
    deadline = time.monotonic() + limit
    while True:
        ok, value = check()
        if ok:
            return value
        if time.monotonic() >= deadline:
            raise VerificationFailed(f"{what} not reached within {limit:.0f}s; last seen: {value}")
        time.sleep(min(ctx.poll_interval, max(0.05, deadline - time.monotonic())))
