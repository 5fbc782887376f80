"""Where a service lives and how to authenticate, resolved from an Airflow connection.

Connection fields (type ``http``): ``host`` (may itself be a full ``http(s)://`` URL),
``port``, ``schema`` (``http``/``https`` as in the HTTP provider; any other value is taken
as a base path, which is what a URI like ``http://prom:9090/prometheus`` puts there),
``login``/``password`` (basic auth), and ``extra``: ``headers`` (dict), ``token`` (bearer),
``verify`` (bool or CA bundle path).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernaut.errors import KubernautError

CONN_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,250}$"
_HTTP_TYPES = {"", "http", "https"}


class ConnectionProblem(KubernautError):
    """The connection is missing or cannot describe an HTTP service."""


@dataclass(frozen=True)
class Endpoint:
    """A base URL with credentials; ``name`` is what errors call it (never the secrets)."""

    name: str
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    auth: tuple[str, str] | None = field(default=None, repr=False)
    verify: bool | str = True

    @classmethod
    def from_url(
        cls, url: str, *, name: str | None = None, headers: Mapping[str, str] | None = None
    ) -> Endpoint:
        """For tests and trusted configuration only (never for URLs from alert data)."""
        if not re.match(r"^https?://[^/]", url):
            raise ConnectionProblem(f"not an http(s) URL: {url!r}")
        return cls(name=name or url, base_url=url.rstrip("/"), headers=dict(headers or {}))


def endpoint_from_connection(conn_id: str) -> Endpoint:
    if not re.match(CONN_ID_PATTERN, conn_id):
        raise ConnectionProblem(f"invalid connection id {conn_id!r}")
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException and backend errors alike
        raise ConnectionProblem(
            f"Airflow connection {conn_id!r} is not available ({exc}); define it, e.g. with "
            f"AIRFLOW_CONN_{conn_id.upper()}='http://host:port'"
        ) from exc
    return endpoint_from_fields(
        conn_id,
        conn_type=conn.conn_type or "",
        host=conn.host or "",
        port=conn.port,
        schema=conn.schema or "",
        login=conn.login or "",
        password=conn.password or "",
        extra=conn.extra_dejson or {},
    )


async def aendpoint_from_connection(conn_id: str) -> Endpoint:
    """``endpoint_from_connection`` for async code (a trigger in the triggerer)."""
    if not re.match(CONN_ID_PATTERN, conn_id):
        raise ConnectionProblem(f"invalid connection id {conn_id!r}")
    from airflow.sdk import BaseHook

    try:
        conn = await BaseHook.aget_connection(conn_id)
    except Exception as exc:
        raise ConnectionProblem(
            f"Airflow connection {conn_id!r} is not available ({exc}); define it, e.g. with "
            f"AIRFLOW_CONN_{conn_id.upper()}='http://host:port'"
        ) from exc
    return endpoint_from_fields(
        conn_id,
        conn_type=conn.conn_type or "",
        host=conn.host or "",
        port=conn.port,
        schema=conn.schema or "",
        login=conn.login or "",
        password=conn.password or "",
        extra=conn.extra_dejson or {},
    )


def endpoint_from_fields(
    conn_id: str,
    *,
    conn_type: str,
    host: str,
    port: int | None,
    schema: str,
    login: str,
    password: str,
    extra: Mapping[str, Any],
) -> Endpoint:
    name = f"connection {conn_id!r}"
    if conn_type.lower() not in _HTTP_TYPES:
        # Keeps e.g. the history database connection from being used as a webhook.
        raise ConnectionProblem(f"{name} has type {conn_type!r}; an HTTP service needs type 'http'")
    if not host:
        raise ConnectionProblem(f"{name} has no host")
    if "://" in host:
        base = host.rstrip("/")
        if not re.match(r"^https?://", base):
            raise ConnectionProblem(f"{name}: host {host!r} is not an http(s) URL")
        if port and not re.search(r"://[^/]*:\d+", base):
            scheme, rest = base.split("://", 1)
            netloc, _, path = rest.partition("/")
            base = f"{scheme}://{netloc}:{port}" + (f"/{path}" if path else "")
    else:
        scheme = schema if schema in ("http", "https") else ("https" if conn_type == "https" else "http")
        base = f"{scheme}://{host}" + (f":{port}" if port else "")
        if schema and schema not in ("http", "https"):
            base += "/" + schema.strip("/")
    headers = extra.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise ConnectionProblem(f"{name}: extra.headers must be an object")
    all_headers = {str(k): str(v) for k, v in headers.items()}
    token = extra.get("token")
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    verify = extra.get("verify", True)
    if not isinstance(verify, bool | str):
        raise ConnectionProblem(f"{name}: extra.verify must be true/false or a CA bundle path")
    auth = (login, password) if login else None
    return Endpoint(name=name, base_url=base, headers=all_headers, auth=auth, verify=verify)
