"""Alertmanager API v2: active alerts by matcher, silences (create, find, expire)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kubernaut.services.connection import endpoint_from_connection
from kubernaut.services.http import AsyncServiceClient, ServiceClient, ServiceError, decode_json

LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


class LabelMatcher(BaseModel):
    """``name op value`` as Alertmanager matches labels (regexes are fully anchored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=LABEL_NAME, description="Label name")
    value: str = Field(max_length=1024, description="Label value or regex")
    op: Literal["=", "!=", "=~", "!~"] = "="

    @property
    def is_regex(self) -> bool:
        return self.op in ("=~", "!~")

    @property
    def is_equal(self) -> bool:
        return self.op in ("=", "=~")

    def to_filter(self) -> str:
        # The v2 filter syntax: quoted value, with backslash and quote escaped.
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'

    def to_api(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}


def matchers_from(
    labels: dict[str, str], extra: list[LabelMatcher] | tuple[LabelMatcher, ...] = ()
) -> list[LabelMatcher]:
    return [LabelMatcher(name=k, value=v) for k, v in sorted(labels.items())] + list(extra)


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AlertmanagerClient:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    @classmethod
    def from_connection(cls, conn_id: str, *, timeout: float = 10.0) -> AlertmanagerClient:
        return cls(ServiceClient(endpoint_from_connection(conn_id), timeout=timeout))

    def close(self) -> None:
        self.client.close()

    def status(self, *, deadline: float | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.client.get_json("/api/v2/status", deadline=deadline)
        return result

    def alerts(
        self,
        matchers: list[LabelMatcher],
        *,
        silenced: bool = True,
        inhibited: bool = True,
        deadline: float | None = None,
    ) -> list[dict[str, Any]]:
        """Active (not resolved) alerts matching all ``matchers``."""
        params = alert_filter(matchers, silenced=silenced, inhibited=inhibited)
        result = self.client.get_json("/api/v2/alerts", params=params, deadline=deadline)
        return list(result or [])

    def create_silence(
        self,
        matchers: list[LabelMatcher],
        *,
        starts_at: dt.datetime,
        ends_at: dt.datetime,
        created_by: str,
        comment: str,
        deadline: float | None = None,
    ) -> str:
        body = {
            "matchers": [m.to_api() for m in matchers],
            "startsAt": rfc3339(starts_at),
            "endsAt": rfc3339(ends_at),
            "createdBy": created_by,
            "comment": comment,
        }
        response = self.client.request("POST", "/api/v2/silences", json=body, deadline=deadline)
        data = decode_json(response, f"{self.client.endpoint.name}: POST /api/v2/silences")
        silence_id = data.get("silenceID") if isinstance(data, dict) else None
        if not silence_id:
            raise ServiceError(f"{self.client.endpoint.name}: silence created but no silenceID returned")
        return str(silence_id)

    def silences(
        self, matchers: list[LabelMatcher], *, deadline: float | None = None
    ) -> list[dict[str, Any]]:
        params = [("filter", m.to_filter()) for m in matchers]
        return list(self.client.get_json("/api/v2/silences", params=params, deadline=deadline) or [])

    def silence(self, silence_id: str, *, deadline: float | None = None) -> dict[str, Any] | None:
        """The silence, or None if Alertmanager does not know it (e.g. garbage-collected)."""
        path = f"/api/v2/silence/{_id(silence_id)}"
        try:
            response = self.client.request("GET", path, retries=1, deadline=deadline)
        except ServiceError as exc:
            if exc.status == 404:
                return None
            raise
        data: dict[str, Any] = decode_json(response, f"{self.client.endpoint.name}: GET {path}")
        return data

    def expire_silence(self, silence_id: str, *, deadline: float | None = None) -> bool:
        """Expire a silence; False if it was already expired or is unknown (so twice is fine)."""
        current = self.silence(silence_id, deadline=deadline)
        if current is None or current.get("status", {}).get("state") == "expired":
            return False
        self.client.request("DELETE", f"/api/v2/silence/{_id(silence_id)}", deadline=deadline)
        return True


def alert_filter(
    matchers: list[LabelMatcher], *, silenced: bool = True, inhibited: bool = True
) -> list[tuple[str, Any]]:
    """Query parameters of GET /api/v2/alerts: active alerts matching every matcher."""
    params: list[tuple[str, Any]] = [("filter", m.to_filter()) for m in matchers]
    return [*params, ("active", "true"), ("silenced", _b(silenced)), ("inhibited", _b(inhibited))]


async def aalerts(
    client: AsyncServiceClient,
    matchers: list[LabelMatcher],
    *,
    silenced: bool = True,
    inhibited: bool = True,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """``AlertmanagerClient.alerts`` for async code (a wait in the triggerer)."""
    params = alert_filter(matchers, silenced=silenced, inhibited=inhibited)
    return list(await client.get_json("/api/v2/alerts", params=params, deadline=deadline) or [])


def _b(flag: bool) -> str:
    return "true" if flag else "false"


def _id(silence_id: str) -> str:
    # Silence ids are UUIDs; anything else must not reach the URL path.
    if not silence_id or not all(c.isalnum() or c == "-" for c in silence_id):
        raise ServiceError(f"invalid silence id {silence_id!r}")
    return silence_id
