"""The one loop every wait runs in: poll, sleep, poll ... until done, failed or the deadline.

``run_wait`` is what the trigger awaits in the triggerer; ``wait_here`` runs the same
coroutine in the calling process (``asyncio.run``) for a step that waits where it runs:
the test-kit, ``run_step`` without Airflow, a wait too short to be worth deferring. There is
no second implementation of any wait.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernaut.errors import KubernautError
from kubernaut.kube.waiting import GROWTH as GROWTH
from kubernaut.kube.waiting import MIN_PAUSE as MIN_PAUSE
from kubernaut.kube.waiting import next_pause, pause_before
from kubernaut.kube.waiting import timeout_message as _timeout_message
from kubernaut.waits.clients import RetryableWaitError, WaitClients
from kubernaut.waits.spec import Done, Failed, Pending, PollResult, WaitOutcome, WaitSpec, WaitSpecError

log = logging.getLogger(__name__)

PollFunction = Callable[[WaitClients, dict[str, Any], dict[str, Any]], Awaitable[PollResult]]

# kind -> "module:function"; imported on first use, so the triggerer loads only what it runs.
KINDS: dict[str, str] = {
    "rollout": "kubernaut.waits.rollout:poll",
    "no_oom": "kubernaut.waits.rollout:poll_no_oom",
    "pod_health": "kubernaut.waits.pods:poll_health",
    "pod_replaced": "kubernaut.waits.pods:poll_replaced",
    "drain": "kubernaut.waits.nodes:poll_drain",
    "pvc_expanded": "kubernaut.waits.storage:poll_pvc_expanded",
    "snapshot_ready": "kubernaut.waits.storage:poll_snapshot_ready",
    "job_finished": "kubernaut.waits.jobs:poll_finished",
    "prometheus": "kubernaut.waits.prometheus:poll",
    "alerts_resolved": "kubernaut.waits.alertmanager:poll",
    "timer": "kubernaut.waits.timer:poll",
    "machines_ready": "kubernaut.waits.cluster_api:poll_machines_ready",
    "machine_replaced": "kubernaut.waits.cluster_api:poll_machine_replaced",
    "certificate_issued": "kubernaut.waits.certificates:poll_issued",
}

# GROWTH, MIN_PAUSE: the pause rules, shared with the blocking loop (kubernaut.kube.waiting).
POLL_TIMEOUT = 60.0  # one poll (a few API calls) never hangs the wait past this
LOG_EVERY = 60.0  # seconds between "still waiting" lines


def poll_function(kind: str) -> PollFunction:
    target = KINDS.get(kind)
    if target is None:
        raise WaitSpecError(f"wait.kind: unknown wait {kind!r} (known: {', '.join(sorted(KINDS))})")
    module, _, name = target.partition(":")
    function: PollFunction = getattr(importlib.import_module(module), name)
    return function


def timeout_message(spec: WaitSpec, last: Any) -> str:
    return _timeout_message(spec.what, spec.span, last, spec.wording)


def _describe(exc: BaseException) -> str:
    """Our own errors say what went wrong in their message; others need their type too."""
    return str(exc) if isinstance(exc, KubernautError) else f"{type(exc).__name__}: {exc}"


async def run_wait(
    spec: WaitSpec,
    clients: WaitClients,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    logger: logging.Logger | Any = log,
) -> WaitOutcome:
    """Poll until the wait's state is there (``done``), cannot come (``failed``), the deadline
    passes (``timeout``, with what was seen last) or a poll fails for good (``error``). Polls
    at least once, even past the deadline. A poll that could not look (RetryableWaitError, a
    hung poll) is retried; if that is the last word at the deadline, the wait ends ``error``."""
    begun = clock()
    try:
        poll = poll_function(spec.kind)
    except WaitSpecError as exc:
        return WaitOutcome("error", str(exc))
    memo: dict[str, Any] = {}  # the poll function's state between polls of this one wait
    pause, ceiling = spec.poll, max(spec.poll, spec.max_poll or spec.poll)
    polls, last, problem, logged = 0, None, "", begun

    def outcome(status: Any, message: str = "", detail: Any = None) -> WaitOutcome:
        return WaitOutcome(status, message, detail, polls=polls, waited=clock() - begun)

    while True:
        polls += 1
        budget = max(5.0, min(POLL_TIMEOUT, spec.deadline - clock() + 5.0))
        result: PollResult | None = None
        try:
            result = await asyncio.wait_for(poll(clients, spec.args, memo), budget)
            problem = ""
        except TimeoutError:
            problem = f"a poll got no answer within {budget:.0f}s"
        except RetryableWaitError as exc:
            problem = str(exc)
            if exc.status == 401:  # short-lived (exec) credentials expired: read them again
                await clients.reset_kube()
        except Exception as exc:  # a wrong object, a refused query: looking again will not help
            return outcome("error", f"{spec.what}: {_describe(exc)}", last)
        if isinstance(result, Done):
            return outcome("done", "", result.detail)
        if isinstance(result, Failed):
            return outcome("failed", result.reason, result.detail)
        if isinstance(result, Pending):
            last = result.detail
        now = clock()
        if now >= spec.deadline:
            if problem:
                return outcome("error", f"{spec.what}: {problem}", last)
            return outcome("timeout", timeout_message(spec, last), last)
        if now - logged >= LOG_EVERY:
            logged = now
            logger.info(
                "kubernaut: waiting for %s (%.0fs left): %s", spec.what, spec.deadline - now, problem or last
            )
        await sleep(pause_before(pause, spec.deadline - now))
        pause = next_pause(pause, ceiling)


def wait_here(spec: WaitSpec, kube_conn_id: str, logger: logging.Logger | Any = log) -> WaitOutcome:
    """Run the wait in this process and return how it ended (blocking)."""

    async def main() -> WaitOutcome:
        clients = WaitClients.in_process(kube_conn_id)
        try:
            return await run_wait(spec, clients, logger=logger)
        finally:
            await clients.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Called from async code (a test, a simulator): its loop is busy, so a thread runs ours.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()
