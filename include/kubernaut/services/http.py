"""An HTTP client bound to one endpoint: timeouts always, retries only when asked, errors
that name the connection, the request, the status and the start of the body."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Collection, Mapping
from typing import Any

import httpx

from kubernaut.errors import KubernautError
from kubernaut.services.connection import Endpoint

BODY_EXCERPT = 300
# A path below the endpoint: no scheme, no authority ("//host"), no dot segments, no
# control characters. httpx would otherwise let an absolute URL replace the base URL.
_PATH = re.compile(r"^/(?!/)[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")


class ServiceError(KubernautError):
    """A service call failed; ``status`` is the HTTP status when there was a response."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def safe_path(path: str) -> str:
    """Return ``path`` if it stays below the endpoint's base URL, else raise ValueError."""
    if not _PATH.match(path) or any(seg in ("..", ".") for seg in path.split("/")):
        raise ValueError(
            f"path must start with '/' and stay below the connection's URL "
            f"(no scheme, '//', '..' or spaces), got {path!r}"
        )
    return path


def excerpt(text: str, limit: int = BODY_EXCERPT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


class ServiceClient:
    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._client = httpx.Client(
            base_url=endpoint.base_url,
            headers=dict(endpoint.headers),
            auth=endpoint.auth,
            verify=endpoint.verify,
            follow_redirects=False,  # a redirect could lead anywhere; report it instead
            transport=transport,
        )

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        expected: Collection[int] | None = None,
        retries: int = 0,
        deadline: float | None = None,
    ) -> httpx.Response:
        """Send one request; retry on 5xx and transport errors up to ``retries`` times.

        ``expected`` None means any 2xx. ``deadline`` (time.monotonic) caps every attempt's
        timeout and the retries, so a call never outlives its step.
        """
        safe_path(path)
        what = f"{self.endpoint.name}: {method} {path}"
        attempt = 0
        while True:
            timeout = _attempt_timeout(self.timeout, deadline, what)
            try:
                response = self._client.request(
                    method, path, params=params, json=json, headers=headers, timeout=timeout
                )
            except httpx.HTTPError as exc:
                error = _transport_error(what, timeout, exc)
            else:
                refused = _status_error(what, response, expected)
                if refused is None:
                    return response
                error = refused
            pause = _retry_pause(error, attempt, retries, deadline)
            if pause is None:
                raise error
            attempt += 1
            time.sleep(pause)

    def get_json(self, path: str, *, params: Any = None, deadline: float | None = None) -> Any:
        response = self.request("GET", path, params=params, retries=1, deadline=deadline)
        return decode_json(response, f"{self.endpoint.name}: GET {path}")


def _attempt_timeout(timeout: float, deadline: float | None, what: str) -> float:
    if deadline is not None:
        timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            raise ServiceError(f"{what}: no time left in the step for the request")
    return timeout


def _transport_error(what: str, timeout: float, exc: httpx.HTTPError) -> ServiceError:
    if isinstance(exc, httpx.TimeoutException):
        return ServiceError(f"{what}: timed out after {timeout:.1f}s ({type(exc).__name__})")
    return ServiceError(f"{what}: request failed: {exc or type(exc).__name__}")


def _status_error(
    what: str, response: httpx.Response, expected: Collection[int] | None
) -> ServiceError | None:
    """None when the status is the expected one (any 2xx when ``expected`` is None)."""
    ok = (200 <= response.status_code < 300) if expected is None else (response.status_code in expected)
    if ok:
        return None
    body = response.text
    return ServiceError(
        f"{what} returned HTTP {response.status_code}"
        + (f" (expected {sorted(expected)})" if expected is not None else "")
        + (f": {excerpt(body)}" if body.strip() else ""),
        status=response.status_code,
        body=body,
    )


def _retry_pause(error: ServiceError, attempt: int, retries: int, deadline: float | None) -> float | None:
    """Seconds to wait before retrying, or None to give up: a client error (4xx) will not
    change on retry, and no retry may outlive the deadline."""
    if error.status is not None and error.status < 500:
        return None
    if attempt >= retries:
        return None
    pause = min(2.0, 0.2 * 2.0**attempt)
    if deadline is not None and time.monotonic() + pause >= deadline:
        return None
    return pause


class AsyncServiceClient:
    """``ServiceClient`` for async code (a wait polling from the triggerer): same endpoint,
    timeouts, retries and error messages, over ``httpx.AsyncClient``."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            base_url=endpoint.base_url,
            headers=dict(endpoint.headers),
            auth=endpoint.auth,
            verify=endpoint.verify,
            follow_redirects=False,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        expected: Collection[int] | None = None,
        retries: int = 0,
        deadline: float | None = None,
    ) -> httpx.Response:
        safe_path(path)
        what = f"{self.endpoint.name}: {method} {path}"
        attempt = 0
        while True:
            timeout = _attempt_timeout(self.timeout, deadline, what)
            try:
                response = await self._client.request(method, path, params=params, timeout=timeout)
            except httpx.HTTPError as exc:
                error = _transport_error(what, timeout, exc)
            else:
                refused = _status_error(what, response, expected)
                if refused is None:
                    return response
                error = refused
            pause = _retry_pause(error, attempt, retries, deadline)
            if pause is None:
                raise error
            attempt += 1
            await asyncio.sleep(pause)

    async def get_json(self, path: str, *, params: Any = None, deadline: float | None = None) -> Any:
        response = await self.request("GET", path, params=params, retries=1, deadline=deadline)
        return decode_json(response, f"{self.endpoint.name}: GET {path}")


def decode_json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ServiceError(
            f"{what}: response is not JSON: {excerpt(response.text)}", status=response.status_code
        ) from exc
