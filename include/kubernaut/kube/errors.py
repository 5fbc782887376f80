"""Turn Kubernetes API errors into messages an operator can act on."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from kubernetes.client.exceptions import ApiException

from kubernaut.actions.base import ActionError

T = TypeVar("T")


class NotFound(ActionError):
    pass


class Conflict(ActionError):
    pass


def _reason(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


@contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Re-raise ApiException as an ActionError naming ``what`` (e.g. 'deployment demo/web')."""
    try:
        yield
    except ApiException as exc:
        if exc.status == 404:
            raise NotFound(f"{what} not found") from exc
        if exc.status == 409:
            raise Conflict(f"{what}: conflict: {_reason(exc)}") from exc
        if exc.status in (401, 403):
            raise ActionError(f"{what}: access denied ({exc.status}): {_reason(exc)}") from exc
        raise ActionError(f"{what}: API error {exc.status}: {_reason(exc)}") from exc


def retry_on_conflict(fn: Callable[[], T], attempts: int = 5) -> T:
    """Optimistic concurrency: re-read and re-apply when another writer got there first."""
    for attempt in range(attempts):
        try:
            return fn()
        except Conflict:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
