"""``http_request``: call an HTTP API behind an Airflow connection. The URL is the
connection's; the step only chooses a path below it, so alert data cannot redirect it."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult
from kubernaut.actions.custom import NO_UNDO_DOC, protected_namespaces_named, strings_in
from kubernaut.actions.monitoring_common import deadline
from kubernaut.actions.registry import register
from kubernaut.durations import Duration
from kubernaut.services.connection import CONN_ID_PATTERN, endpoint_from_connection
from kubernaut.services.http import ServiceClient, excerpt, safe_path
from kubernaut.services.webhook import payload_size_ok

if TYPE_CHECKING:
    from kubernaut.policy import Target

MAX_BODY_OUTPUT = 16_000
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,100}$")
# Credentials come from the connection, not from step parameters that may carry alert data.
_RESERVED_HEADERS = {"authorization", "host", "cookie", "proxy-authorization", "content-length"}
Scalar = str | int | float | bool
SAFE_METHODS = ("GET", "HEAD")  # RFC 9110 safe methods: read only


class HttpRequestParams(ActionParams):
    conn_id: str = Field(pattern=CONN_ID_PATTERN, description="Airflow connection holding the base URL")
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(default="/", description="Path below the connection's URL")
    query: dict[str, Scalar] = Field(default_factory=dict, description="Query-string parameters")
    body: Any = Field(default=None, description="JSON body (objects, lists, scalars)")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers (no auth headers)")
    expected_status: list[int] = Field(
        default_factory=list, description="Accepted statuses (default: any 2xx)"
    )
    timeout: Duration = Field(default=timedelta(seconds=30), description="Per-request timeout")
    retries: int = Field(default=0, ge=0, le=5, description="Retries on 5xx/connection errors")

    _path = field_validator("path")(safe_path)
    _body = field_validator("body")(payload_size_ok)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            if not _HEADER.match(name) or name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is not allowed (auth belongs in the connection)")
            if any(c in header for c in "\r\n\0"):
                raise ValueError(f"header {name!r} contains a line break")
        return value

    @field_validator("expected_status")
    @classmethod
    def _statuses(cls, value: list[int]) -> list[int]:
        if any(not 100 <= s <= 599 for s in value):
            raise ValueError("expected_status values must be HTTP statuses (100-599)")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(minutes=10):
            raise ValueError("timeout must be between 0 and 10m")
        return value


@register
class HttpRequest(Action[HttpRequestParams]):
    kind = "custom"
    name = "http_request"
    Params = HttpRequestParams
    summary = "Call an HTTP API behind an Airflow connection (path, JSON body, expected status)."
    mutating = True  # POST/PUT/PATCH/DELETE; a GET or HEAD reads only (is_mutating)
    changes = (
        "POST/PUT/PATCH/DELETE: whatever the remote API does with the request; the policy refuses "
        "a request naming a protected namespace (GET/HEAD read only)"
    )
    undo_doc = NO_UNDO_DOC
    dry_run_doc = "connection resolved, request not sent"

    def is_mutating(self, params: HttpRequestParams) -> bool:
        return params.method not in SAFE_METHODS

    def no_undo_reason(self, params: HttpRequestParams) -> str:
        return f"custom/http_request {params.method} {params.path} changes a remote system and has no undo"

    def targets(self, ctx: ActionContext, params: HttpRequestParams) -> list[Target]:
        named = strings_in([params.path, params.query, params.body, params.headers])
        return protected_namespaces_named(ctx, named)

    def run(self, ctx: ActionContext, params: HttpRequestParams) -> ActionResult:
        endpoint = endpoint_from_connection(params.conn_id)
        request = {"method": params.method, "connection": params.conn_id, "path": params.path}
        if ctx.dry_run:
            # Even a GET may trigger something on the far side: a dry run sends nothing.
            return ActionResult(output={**request, "sent": False, "dry_run": True, "body": params.body})
        with ServiceClient(endpoint, timeout=params.timeout.total_seconds()) as client:
            response = client.request(
                params.method,
                params.path,
                params=params.query or None,
                json=params.body,
                headers=params.headers or None,
                expected=params.expected_status or None,
                retries=params.retries,
                deadline=deadline(ctx),
            )
        output: dict[str, Any] = {**request, "sent": True, "status": response.status_code}
        try:
            output["json"] = response.json() if len(response.content) <= MAX_BODY_OUTPUT else None
        except ValueError:
            output["json"] = None
        if output["json"] is None:
            output["text"] = excerpt(response.text, MAX_BODY_OUTPUT)
        return ActionResult(output=output)
