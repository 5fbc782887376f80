"""A wait as data: what to poll, until when, and how a poll answers.

A ``WaitSpec`` is plain JSON (it travels in a trigger's kwargs and a trigger event), so the
triggerer can run it without the action, its parameters or the DAG. Times are epoch seconds:
the wait may start in one process and finish in another.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

Wording = Literal["reached", "holds"]
Status = Literal["done", "failed", "timeout", "error"]
STATUSES: tuple[Status, ...] = ("done", "failed", "timeout", "error")


class WaitSpecError(ValueError):
    """A serialised wait or wait outcome is malformed; the message names the field."""


@dataclass(frozen=True)
class WaitSpec:
    """``kind`` names the poll function (``kubernaut.waits.registry``), ``args`` its JSON
    arguments. The wait polls every ``poll`` seconds, the interval growing by half each time
    up to ``max_poll`` (default: ``poll``), until ``deadline``. ``what`` names it in messages
    ("rollout of deployment demo/web"); ``wording`` picks "... not reached within 30s; last
    seen: ..." or, for a checked condition, "... does not hold within 30s: ..."."""

    kind: str
    args: dict[str, Any]
    deadline: float
    poll: float = 1.0
    max_poll: float | None = None
    what: str = ""
    wording: Wording = "reached"
    started: float = field(default_factory=time.time)

    @property
    def span(self) -> float:
        """How long the wait may last in all, from when it was made."""
        return max(0.0, self.deadline - self.started)

    def remaining(self, now: float | None = None) -> float:
        return max(0.0, self.deadline - (time.time() if now is None else now))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "args": self.args,
            "deadline": self.deadline,
            "poll": self.poll,
            "max_poll": self.max_poll,
            "what": self.what,
            "wording": self.wording,
            "started": self.started,
        }

    @classmethod
    def from_dict(cls, data: Any) -> WaitSpec:
        if not isinstance(data, dict):
            raise WaitSpecError(f"wait: expected an object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise WaitSpecError(f"wait: unknown field(s) {', '.join(unknown)}")
        kind = data.get("kind")
        if not isinstance(kind, str) or not kind:
            raise WaitSpecError(f"wait.kind: expected a non-empty string, got {kind!r}")
        args = data.get("args")
        if not isinstance(args, dict):
            raise WaitSpecError(f"wait.args: expected an object, got {type(args).__name__}")
        wording = data.get("wording", "reached")
        if wording not in ("reached", "holds"):
            raise WaitSpecError(f"wait.wording: expected 'reached' or 'holds', got {wording!r}")
        what = data.get("what", "")
        if not isinstance(what, str):
            raise WaitSpecError(f"wait.what: expected a string, got {what!r}")
        max_poll = data.get("max_poll")
        return cls(
            kind=kind,
            args=args,
            deadline=_seconds(data, "deadline"),
            poll=_seconds(data, "poll", positive=True, default=1.0),
            max_poll=None if max_poll is None else _seconds(data, "max_poll", positive=True),
            what=what,
            wording=wording,
            started=_seconds(data, "started", default=time.time()),
        )


def _seconds(
    data: dict[str, Any], key: str, *, positive: bool = False, default: float | None = None
) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WaitSpecError(f"wait.{key}: expected a number of seconds, got {value!r}")
    if positive and value <= 0:
        raise WaitSpecError(f"wait.{key}: must be positive, got {value!r}")
    return float(value)


# --- what one poll answers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    """The awaited state is there; ``detail`` (JSON) goes to the step's output."""

    detail: Any = None


@dataclass(frozen=True)
class Pending:
    """Not yet; ``detail`` (JSON) is what was seen, shown if the wait times out."""

    detail: Any = None


@dataclass(frozen=True)
class Failed:
    """It will not get there (e.g. an OOM kill seen): stop waiting now, with this reason."""

    reason: str
    detail: Any = None


PollResult = Done | Pending | Failed


@dataclass(frozen=True)
class WaitOutcome:
    """How a wait ended, as the trigger reports it in its one event."""

    status: Status
    message: str = ""
    detail: Any = None
    polls: int = 0
    waited: float = 0.0

    @property
    def done(self) -> bool:
        return self.status == "done"

    def to_event(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "detail": self.detail,
            "polls": self.polls,
            "waited": round(self.waited, 3),
        }

    @classmethod
    def from_event(cls, event: Any) -> WaitOutcome:
        if not isinstance(event, dict):
            raise WaitSpecError(f"wait event: expected an object, got {type(event).__name__}")
        status = event.get("status")
        if status not in STATUSES:
            raise WaitSpecError(f"wait event.status: expected one of {', '.join(STATUSES)}, got {status!r}")
        message = event.get("message", "")
        return cls(
            status=status,
            message=message if isinstance(message, str) else str(message),
            detail=event.get("detail"),
            polls=int(event.get("polls") or 0),
            waited=float(event.get("waited") or 0.0),
        )
