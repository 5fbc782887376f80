"""A PromQL instant query whose samples must pass a check (``prometheus``): the one check
``prometheus_query`` makes, once or until it holds."""

from __future__ import annotations

from typing import Any

from kubernaut.services.http import ServiceError
from kubernaut.services.prometheus import Sample, aquery, format_labels
from kubernaut.waits.clients import RetryableWaitError, WaitClients
from kubernaut.waits.conditions import Condition
from kubernaut.waits.spec import Done, Pending, PollResult


def describe(samples: list[Sample], limit: int = 5) -> str:
    shown = ", ".join(f"{format_labels(s.labels)} = {s.value:g}" for s in samples[:limit])
    return shown + (f", … ({len(samples) - limit} more)" if len(samples) > limit else "")


def evaluate_instant(
    condition: Condition | None, expect: str | None, samples: list[Sample]
) -> tuple[bool, str]:
    """Whether the samples pass the check, and why not."""
    if expect == "empty":
        return not samples, f"expected no samples, got {len(samples)}: {describe(samples)}"
    if not samples and (expect == "non_empty" or condition is not None):
        return False, "the query returned no samples (is the metric or a label misspelt?)"
    if condition is not None:
        failing = [s for s in samples if not condition.holds(s.value)]
        if failing:
            return False, f"{len(failing)} of {len(samples)} samples not {condition}: {describe(failing)}"
    return True, ""


def retryable(exc: ServiceError) -> bool:
    """Unreachable, timed out or a 5xx: the service may answer the next poll."""
    return exc.status is None or exc.status >= 500


async def poll(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> PollResult:
    """args: ``conn_id``, ``query``, ``condition`` ({op, value} or None), ``expect``, ``max_samples``."""
    client = await clients.http(args["conn_id"])
    try:
        samples = await aquery(client, args["query"])
    except ServiceError as exc:
        if retryable(exc):
            raise RetryableWaitError(str(exc)) from exc
        raise
    condition = Condition.model_validate(args["condition"]) if args.get("condition") else None
    ok, why = evaluate_instant(condition, args.get("expect"), samples)
    if not ok:
        return Pending(why)
    limit = int(args.get("max_samples") or 50)
    return Done(
        {
            "query": args["query"],
            "sample_count": len(samples),
            "samples": [s.to_dict() for s in samples[:limit]],
            "truncated": len(samples) > limit,
        }
    )
