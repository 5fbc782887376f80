"""Built-in custom actions: ``wait`` and ``log``."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field

from kubernaut.actions.base import Action, ActionContext, ActionError, ActionParams, ActionResult
from kubernaut.actions.registry import register
from kubernaut.durations import Duration


class WaitParams(ActionParams):
    duration: Duration = Field(description="How long to wait, e.g. '30s'")


@register
class Wait(Action[WaitParams]):
    kind = "custom"
    name = "wait"
    Params = WaitParams
    summary = "Pause for a duration (bounded by the step timeout)."

    def run(self, ctx: ActionContext, params: WaitParams) -> ActionResult:
        seconds = params.duration.total_seconds()
        if seconds > ctx.remaining():
            raise ActionError(f"wait of {seconds:g}s exceeds the step's remaining {ctx.remaining():.0f}s")
        if not ctx.dry_run:
            time.sleep(seconds)
        return ActionResult(output={"waited_seconds": 0.0 if ctx.dry_run else seconds})


class LogParams(ActionParams):
    message: str = Field(description="Text to write to the task log and the step result")
    level: Literal["debug", "info", "warning", "error"] = "info"
    fields: dict[str, Any] = Field(default_factory=dict, description="Extra data recorded with it")


@register
class Log(Action[LogParams]):
    kind = "custom"
    name = "log"
    Params = LogParams
    summary = "Write a message (and fields) to the run's log and record."

    def run(self, ctx: ActionContext, params: LogParams) -> ActionResult:
        getattr(ctx.logger, params.level)("%s %s", params.message, params.fields or "")
        return ActionResult(output={"message": params.message, "level": params.level, **params.fields})


__all__ = ["Log", "Wait"]
