"""Human durations ("30s", "5m", "1h30m", "250ms") as a pydantic type."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"


def parse_duration(value: Any) -> timedelta:
    """Parse "90s", "5m", "1h30m" or a number of seconds; raise ValueError naming the value."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '30s', '5m' or '1h30m', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        if text and _PART.sub("", text) == "":
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
            return timedelta(seconds=seconds)
    raise ValueError(f"expected a duration like '30s', '5m' or '1h30m', got {value!r}")


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds != int(seconds):
        return f"{int(seconds * 1000)}ms"
    return f"{int(seconds)}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "Duration such as '30s', '5m', '1h30m' or a number of seconds",
        }
    ),
]
