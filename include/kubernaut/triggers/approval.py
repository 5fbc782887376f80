"""Reads an approval already given, from the triggerer (tasks cannot read HITL details)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.standard.triggers.hitl import HITLTrigger
from airflow.triggers.base import TriggerEvent


class RecordedApprovalTrigger(HITLTrigger):
    """HITLTrigger that first waits ``settle`` seconds, so the scheduler has processed the
    executor event of the process that just deferred before this trigger resumes the task
    (otherwise the same stale-event race could fail the resumed task: apache/airflow#67287)."""

    def __init__(self, *, settle: float = 5.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settle = settle

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{type(self).__module__}.{type(self).__qualname__}", {**kwargs, "settle": self.settle}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(self.settle)
        async for event in super().run():
            yield event
