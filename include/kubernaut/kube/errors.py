"""Turn Kubernetes API errors into messages an operator can act on."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from kubernaut.errors import KubernautError

if TYPE_CHECKING:
    from kubernetes.client.exceptions import ApiException

T = TypeVar("T")


class KubeError(KubernautError):
    """A Kubernetes API request failed; the message names the object. The actions layer
    turns these into ``ActionError`` at its boundary (``kubernaut.actions.base``)."""


class NotFound(KubeError):
    """404: the object does not exist."""


class Conflict(KubeError):
    """409: another writer changed the object first (or it already exists)."""


class Invalid(KubeError):
    """422: the API server refused the object as invalid."""


class Forbidden(KubeError):
    """401/403: the credentials may not do this."""


class NotReady(KubeError):
    """A state polled for (``kubernaut.kube.waiting``) was not reached in time."""


def _reason(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


@contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Re-raise ApiException as a KubeError naming ``what`` (e.g. 'deployment demo/web')."""
    # Imported here: the error classes stay importable without loading the kubernetes client.
    from kubernetes.client.exceptions import ApiException

    try:
        yield
    except ApiException as exc:
        if exc.status == 404:
            raise NotFound(f"{what} not found") from exc
        if exc.status == 409:
            raise Conflict(f"{what}: conflict: {_reason(exc)}") from exc
        if exc.status in (401, 403):
            raise Forbidden(f"{what}: access denied ({exc.status}): {_reason(exc)}") from exc
        if exc.status == 422:
            raise Invalid(f"{what}: API error {exc.status}: {_reason(exc)}") from exc
        raise KubeError(f"{what}: API error {exc.status}: {_reason(exc)}") from exc


CONFLICT_ATTEMPTS = 5
BACKOFF_BASE = 0.05  # seconds: the first retry waits up to this long
BACKOFF_CAP = 1.0  # seconds: no single wait is longer


def backoff_delay(retry: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """The upper bound of the wait before retry number ``retry`` (0-based): exponential, capped."""
    return float(min(cap, base * 2**retry))


def retry_on_conflict(
    fn: Callable[[], T],
    attempts: int = CONFLICT_ATTEMPTS,
    *,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> T:
    """Optimistic concurrency: re-read and re-apply when another writer got there first.

    Between attempts it waits a random time in [0, min(cap, base * 2**retry)) ("full jitter"),
    so writers that collided do not collide again in lock step; after ``attempts`` conflicts
    the last Conflict is raised."""
    if attempts < 1:
        raise ValueError(f"retry_on_conflict: attempts must be at least 1, got {attempts}")
    for attempt in range(attempts):
        try:
            return fn()
        except Conflict:
            if attempt == attempts - 1:
                raise
            sleep(jitter() * backoff_delay(attempt, base, cap))
    raise AssertionError("unreachable")
