"""Conditional writes: a JSON patch that applies only to the object version the action read."""

from __future__ import annotations

from typing import Any


def guarded(resource_version: str, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A JSON patch that only applies to the version we read: the API answers 409 otherwise."""
    return [{"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version}, *ops]
