"""Reads an approval already given, from the triggerer (tasks cannot read HITL details)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.standard.triggers.hitl import HITLTrigger
from airflow.triggers.base import TriggerEvent

from kubernaut.triggers import SETTLE_SECONDS


class RecordedApprovalTrigger(HITLTrigger):
    """HITLTrigger that first waits ``settle`` seconds (kubernaut.triggers.SETTLE_SECONDS), so
    the stale-event race that failed the gate cannot fail its retry too."""

    def __init__(self, *, settle: float = SETTLE_SECONDS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settle = settle

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{type(self).__module__}.{type(self).__qualname__}", {**kwargs, "settle": self.settle}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(self.settle)
        async for event in super().run():
            yield event
