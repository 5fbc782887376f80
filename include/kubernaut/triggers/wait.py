"""The trigger a waiting step defers to: runs its wait in the triggerer, yields one event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from kubernaut.triggers import SETTLE_SECONDS
from kubernaut.waits.clients import WaitClients
from kubernaut.waits.driver import run_wait
from kubernaut.waits.spec import WaitSpec

CLASSPATH = "kubernaut.triggers.wait.StepWaitTrigger"


class StepWaitTrigger(BaseTrigger):
    """Polls ``wait`` (a ``WaitSpec`` as JSON) until it is done, fails or times out, then fires
    one event: ``{"status": done|failed|timeout|error, "message", "detail", "polls", "waited",
    "resume"}``. ``resume`` is handed back untouched: it is what the step's ``execute_complete``
    needs to finish (the result of its change, its parameters), kept with the trigger so that
    it survives the task process that deferred and any triggerer restart.

    Polls only read, so running the wait again after a triggerer restart repeats no change
    (the drain's eviction retries are uid-guarded, see ``kubernaut.waits.nodes``); the change
    itself was made and journaled once, before the step deferred."""

    def __init__(
        self,
        wait: dict[str, Any],
        kube_conn_id: str = "kubernetes_default",
        resume: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.wait = WaitSpec.from_dict(wait)  # a malformed wait fails here, in the task, not later
        self.kube_conn_id = kube_conn_id
        self.resume = resume or {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {
            "wait": self.wait.to_dict(),
            "kube_conn_id": self.kube_conn_id,
            "resume": self.resume,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(SETTLE_SECONDS)  # see kubernaut.triggers.SETTLE_SECONDS
        clients = WaitClients.in_triggerer(self.kube_conn_id)
        try:
            outcome = await run_wait(self.wait, clients, logger=self.log)
        finally:
            await clients.close()
        self.log.info(
            "kubernaut: %s: %s after %d polls, %.1fs",
            self.wait.what,
            outcome.status,
            outcome.polls,
            outcome.waited,
        )
        yield TriggerEvent({**outcome.to_event(), "resume": self.resume})  # type: ignore[no-untyped-call]
