"""The Alertmanager webhook body (version 4), validated with errors that name the field.

Unknown fields are ignored so a newer Alertmanager keeps working; known fields must
have the documented type. Values stay strings exactly as received: they go to the run.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Airflow's run_id pattern; the fingerprint becomes part of the run id.
RUN_ID_CHARS = re.compile(r"^[A-Za-z0-9_.~:+-]+$")
# RFC 3339 as Alertmanager writes it (Go time): up to nanoseconds, 'Z' or an offset.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_timestamp(text: str) -> datetime:
    """Parse an Alertmanager timestamp to an aware UTC datetime (nanoseconds truncated)."""
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"expected an RFC 3339 timestamp like 2024-05-01T12:00:00Z, got {text!r}")
    frac = (m.group(7) or "").ljust(6, "0")[:6]
    zone = "+00:00" if m.group(8) in ("Z", "z") else m.group(8)
    iso = f"{m.group(1)}-{m.group(2)}-{m.group(3)}T{m.group(4)}:{m.group(5)}:{m.group(6)}.{frac}{zone}"
    try:
        return datetime.fromisoformat(iso).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"invalid timestamp {text!r}: {exc}") from None


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class Alert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=128)

    @field_validator("startsAt")
    @classmethod
    def _starts_at(cls, value: str) -> str:
        parse_timestamp(value)
        return value

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str) -> str:
        if not RUN_ID_CHARS.match(value):
            raise ValueError("expected letters, digits or _.~:+- (Alertmanager sends 16 hex digits)")
        return value

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def starts_at(self) -> datetime:
        return parse_timestamp(self.startsAt)

    def to_conf(self) -> dict[str, Any]:
        """The alert as the run receives it in ``conf["alert"]``."""
        return self.model_dump(mode="json")


class WebhookPayload(_Lenient):
    version: Literal["4"] = "4"
    receiver: str = ""
    status: Literal["firing", "resolved"]
    alerts: list[Alert]
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    groupKey: str = ""
    truncatedAlerts: int = Field(default=0, ge=0)


class PayloadError(ValueError):
    """The body is not a valid webhook payload; ``problems`` name each field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("alerts", 0, "labels", "pod")`` -> ``alerts[0].labels.pod``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


def parse_payload(data: Any) -> WebhookPayload:
    """Validate decoded JSON; raise PayloadError listing every problem with its field."""
    if not isinstance(data, dict):
        raise PayloadError([f"(body): expected a JSON object, got {type(data).__name__}"])
    try:
        return WebhookPayload.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{field_path(tuple(e['loc']))}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        ]
        raise PayloadError(problems[:20]) from None
