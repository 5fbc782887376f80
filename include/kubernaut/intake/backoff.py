"""Block rules from outcomes, as pure functions over what the history says about a target.

* **backoff**: after ``n`` runs for one target within ``window`` (any alert, any template; dry
  runs and ``not_needed`` runs do not count), the next run waits ``min(max, base * 2**(n-1))``
  after the newest of them. Decision ``backoff``, with the time it ends.
* **ineffective chain**: ``runs`` runs for the same alert and target within ``window`` that
  ended failed / rolled back (or were assessed ineffective) block the target until a person
  runs ``kubernaut unblock TARGET``; runs before that unblock no longer count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernaut.config import BackoffConfig, IneffectiveChainConfig


def as_utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def backoff_delay(runs: int, config: BackoffConfig) -> timedelta:
    """How long after the newest of ``runs`` recent runs the next one may start."""
    if runs <= 0 or not config.base:
        return timedelta(0)
    seconds = config.base.total_seconds() * 2.0 ** min(runs - 1, 60)  # float: no overflow
    return timedelta(seconds=min(seconds, config.max.total_seconds()))


@dataclass(frozen=True)
class Backoff:
    until: datetime
    reason: str


def backoff_of(
    runs: Sequence[Mapping[str, Any]], now: datetime, config: BackoffConfig, target: str
) -> Backoff | None:
    """The backoff in force for a target given its recent runs (newest first or not), or None."""
    started = [s for s in (as_utc(r.get("started_at")) for r in runs) if s is not None]
    if not started or not config.base:
        return None
    delay = backoff_delay(len(started), config)
    last = max(started)
    until = last + delay
    if now >= until:
        return None
    n = len(started)
    reason = (
        f"{n} run(s) for {target} within {config.window} (last {last:%Y-%m-%dT%H:%M:%SZ}); backoff "
        f"{config.base} x 2^{n - 1} = {delay} (max {config.max}): next run not before "
        f"{until:%Y-%m-%dT%H:%M:%SZ} ({int((until - now).total_seconds())}s left)"
    )
    return Backoff(until, reason)


def chain_block(
    runs: Sequence[Mapping[str, Any]], config: IneffectiveChainConfig, alert: str, target: str
) -> str | None:
    """The reason the target is blocked by an ineffective chain, or None."""
    if config.runs <= 0 or len(runs) < config.runs:
        return None
    shown = ", ".join(f"{r.get('dag_run_id', '?')} ({r.get('status', '?')})" for r in list(runs)[:5])
    more = f" and {len(runs) - 5} more" if len(runs) > 5 else ""
    return (
        f"ineffective chain: {len(runs)} runs for {alert} on {target} within {config.window} ended "
        f"failed, rolled back or ineffective (limit {config.runs}): {shown}{more}; blocked until a person "
        f"runs `kubernaut unblock {target_arg(target)}`"
    )


def target_arg(target: str) -> str:
    """``Kind/ns/name`` as ``kubernaut unblock`` takes it (``ns/name``; a node: its name)."""
    parts = target.split("/")
    return "/".join(parts[1:]) if len(parts) > 1 else target
