"""Whether a run needs its rollback, decided in the triggerer.

The scheduler starts every remediation's ``rollback`` task here (the operator's
``start_from_trigger``). ``RollbackCheckTrigger`` reads the final states of the run's steps
(their trigger rule is ``all_done``: none is still running) and, when none ``failed`` or was
``upstream_failed``, ends the task ``skipped`` as the worker would: the run that did all it
meant to (the common case) spends no worker process on a task with nothing to do. Anything
else goes to a worker (``IN_WORKER``), which decides again from the same states and undoes:

- a step failed or was upstream_failed: the undo runs actions, which belong in a worker;
- the run has approval gates: whether a person rejected one is the worker's to read;
- the states cannot be read here (no run handed to the trigger, the Execution API failing).

Reading only, it may run any number of times (a triggerer restart) to the same decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSkippedEvent, TriggerEvent

ROLLBACK_TRIGGER = "kubernaut.triggers.rollback.RollbackCheckTrigger"
IN_WORKER = "in_worker"  # the event that resumes the task in a worker (``execute``)
# States in which a step or gate did not do what the run meant it to.
FAILED_STATES = ("failed", "upstream_failed")
# The states a step of a run whose rollback started can be in; anything else: ask a worker.
FINISHED_STATES = ("success", "skipped", "removed", *FAILED_STATES)


class RollbackCheckTrigger(BaseTrigger):
    """``steps``: the task ids of the run's steps; ``gates``: of its approval gates."""

    def __init__(self, steps: list[str], gates: list[str] | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.steps = list(steps)
        self.gates = list(gates or [])

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ROLLBACK_TRIGGER, {"steps": self.steps, "gates": self.gates}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        states, why = await self._states()
        if why is None:
            failed = [t for t in self.steps if states[t] in FAILED_STATES]
            if failed:
                why = "; ".join(f"{t} {states[t]}" for t in failed) + ": rolling back in a worker"
        if why is not None:
            self.log.info("kubernaut: %s", why)
            yield TriggerEvent({"status": IN_WORKER, "reason": why})  # type: ignore[no-untyped-call]
            return
        self.log.info(
            "kubernaut: no rollback: nothing failed (%s)", ", ".join(f"{t} {states[t]}" for t in self.steps)
        )
        yield TaskSkippedEvent()

    async def _states(self) -> tuple[dict[str, str], str | None]:
        """The steps' states, or why a worker must decide."""
        if self.gates:
            return {}, f"the run has approval gates ({', '.join(self.gates)}): a worker reads their answers"
        ti: Any = getattr(self, "task_instance", None)
        get_states = getattr(ti, "get_task_states", None)
        run_id = getattr(ti, "run_id", None)
        if get_states is None or not run_id:
            return {}, "the triggerer has no run for this task: a worker decides"
        try:  # a blocking call through the triggerer's supervisor: off the event loop
            found = await asyncio.to_thread(
                get_states, dag_id=ti.dag_id, task_ids=self.steps, run_ids=[run_id]
            )
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
            return {}, f"the steps' states cannot be read here ({problem}): a worker decides"
        by_run = found.get(run_id, found) if isinstance(found, Mapping) else {}
        states = {t: str(by_run.get(t)) for t in self.steps}
        unfinished = [f"{t} {s}" for t, s in states.items() if s not in FINISHED_STATES]
        if unfinished:
            return states, f"steps not finished: {', '.join(unfinished)}: a worker decides"
        return states, None
