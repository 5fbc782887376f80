"""POST JSON to a webhook connection, retrying 5xx and transport errors with backoff."""

from __future__ import annotations

import json
from typing import Any

from kubernaut.services.connection import endpoint_from_connection
from kubernaut.services.http import ServiceClient, excerpt

MAX_PAYLOAD_BYTES = 64 * 1024


def payload_size_ok(payload: Any) -> Any:
    """Pydantic-style check: the payload is JSON and at most MAX_PAYLOAD_BYTES."""
    size = len(json.dumps(payload, default=str).encode())
    if size > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    return payload


def post_json(
    conn_id: str,
    path: str,
    payload: Any,
    *,
    retries: int,
    timeout: float,
    deadline: float,
) -> dict[str, Any]:
    """Send ``payload``; return the status and the (bounded) response body."""
    with ServiceClient(endpoint_from_connection(conn_id), timeout=timeout) as client:
        response = client.request("POST", path, json=payload, retries=retries, deadline=deadline)
    try:
        body: Any = response.json()
    except ValueError:
        body = excerpt(response.text, 2000)
    return {"status": response.status_code, "response": body}
