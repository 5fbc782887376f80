"""No active alert matches in Alertmanager (``alerts_resolved``): ``check_alert_resolved``."""

from __future__ import annotations

from typing import Any

from kubernaut.services.alertmanager import LabelMatcher, aalerts
from kubernaut.services.http import ServiceError
from kubernaut.waits.clients import RetryableWaitError, WaitClients
from kubernaut.waits.prometheus import retryable
from kubernaut.waits.spec import Done, Pending, PollResult


def describe_alerts(alerts: list[dict[str, Any]], limit: int = 5) -> str:
    parts = [
        f"{a.get('labels', {})} ({a.get('status', {}).get('state', '?')} since {a.get('startsAt', '?')})"
        for a in alerts[:limit]
    ]
    return "; ".join(parts) + (f"; … ({len(alerts) - limit} more)" if len(alerts) > limit else "")


async def poll(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> PollResult:
    """args: ``conn_id``, ``matchers`` (LabelMatcher fields), ``silenced`` (count silenced ones)."""
    matchers = [LabelMatcher.model_validate(m) for m in args["matchers"]]
    client = await clients.http(args["conn_id"])
    try:
        firing = await aalerts(client, matchers, silenced=bool(args.get("silenced", True)))
    except ServiceError as exc:
        if retryable(exc):
            raise RetryableWaitError(str(exc)) from exc
        raise
    if firing:
        return Pending(f"{len(firing)} still active: {describe_alerts(firing)}")
    return Done({"resolved": True, "matchers": [m.to_filter() for m in matchers]})
