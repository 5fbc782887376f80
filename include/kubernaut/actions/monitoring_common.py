"""Shared pieces of the service-backed monitoring actions: thresholds, wait bounds, clients."""

from __future__ import annotations

import time
from datetime import timedelta

from kubernaut.actions.base import ActionContext
from kubernaut.services.alertmanager import AlertmanagerClient
from kubernaut.services.prometheus import PrometheusClient
from kubernaut.waits.conditions import Condition as Condition  # defined with the waits that use it

MAX_QUERY_LENGTH = 10_000
MAX_WAIT = timedelta(hours=6)
LAST_CHECK_TIME = 0.5
HTTP_TIMEOUT = 30.0  # one request; the step's remaining time caps it further


def bounded_wait(value: timedelta | None) -> timedelta | None:
    """Field validator for ``wait_timeout``: no step waits longer than MAX_WAIT."""
    if value is not None and value > MAX_WAIT:
        raise ValueError(f"wait_timeout must be at most {MAX_WAIT}")
    return value


def deadline(ctx: ActionContext) -> float:
    return time.monotonic() + ctx.remaining()


def prometheus(ctx: ActionContext) -> PrometheusClient:
    return PrometheusClient.from_connection(ctx.config.prometheus_conn_id, timeout=HTTP_TIMEOUT)


def alertmanager(ctx: ActionContext, conn_id: str | None = None) -> AlertmanagerClient:
    return AlertmanagerClient.from_connection(
        conn_id or ctx.config.alertmanager_conn_id, timeout=HTTP_TIMEOUT
    )


def wait_within(ctx: ActionContext, wait: timedelta | None) -> float:
    """How long a check may be polled: 0 (once) without ``wait_timeout``; else up to it, stopping
    a little before the step runs out so that the last check has time to answer."""
    if wait is None:
        return 0.0
    return max(0.0, min(wait.total_seconds(), ctx.remaining() - LAST_CHECK_TIME))
