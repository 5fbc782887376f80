"""Built-in custom actions: ``wait`` and ``log``; the policy helper of the changing ones
(``http_request``, ``run_script``)."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from kubernaut.actions.base import Action, ActionContext, ActionError, ActionParams, ActionResult
from kubernaut.actions.registry import register
from kubernaut.durations import Duration

if TYPE_CHECKING:
    from kubernaut.policy import Target

# Namespace names are DNS-1123 labels: a name is a whole run of these characters.
_NOT_NAME = re.compile(r"[^a-z0-9-]+")
NO_UNDO_DOC = (
    "none: journaled before it runs; the rollback reports it `not_restorable` unless the step "
    "declares a `rollback:` action"
)


def strings_in(value: Any) -> Iterator[str]:
    """Every string (and scalar, and mapping key) in a parameter value, nested ones included."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)
    elif value is not None:
        yield str(value)


def protected_namespaces_named(ctx: ActionContext, values: Iterable[str]) -> list[Target]:
    """Policy targets of a step that changes something outside the Kubernetes objects it could
    name: each protected namespace that appears as a whole name in its parameters (a path
    segment, a query value, a body field, an argument). The step cannot be tied to one object,
    so ``require_label`` is not checked here (``check_labels=False``)."""
    from kubernaut.policy import Target

    protected = set(ctx.config.policy.protected_namespaces)
    named = {token for value in values for token in _NOT_NAME.split(value.lower()) if token in protected}
    return [Target("Namespace", None, ns, check_labels=False) for ns in sorted(named)]


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
        if ctx.dry_run:
            return ActionResult(output={"waited_seconds": 0.0})
        until = time.time() + seconds
        # Looked at once, then after a pause a hair longer than the duration (two polls); a few
        # seconds of room so that a late wake-up is not a timeout.
        wait = ctx.wait(
            "timer", {"until": until, "seconds": seconds}, what=f"wait of {seconds:g}s", within=seconds + 5
        )
        wait = dataclasses.replace(wait, poll=seconds + 0.05, max_poll=None)
        return ActionResult(output={"waited_seconds": seconds}, wait=wait)


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


__all__ = ["NO_UNDO_DOC", "Log", "Wait", "protected_namespaces_named", "strings_in"]
