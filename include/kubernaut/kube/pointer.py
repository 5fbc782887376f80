"""JSON pointers (RFC 6901) over API objects as plain dicts: escape, split, read."""

from __future__ import annotations

from typing import Any

MISSING = object()  # what ``lookup`` returns for a path that does not exist


def escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def join(parts: list[str]) -> str:
    return "".join("/" + escape(p) for p in parts)


def split(pointer: str) -> list[str]:
    """'/metadata/labels/app.kubernetes.io~1name' -> ['metadata', 'labels', 'app.kubernetes.io/name']."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"{pointer!r} is not a JSON pointer (it must start with '/')")
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def lookup(doc: Any, parts: list[str]) -> Any:
    """The value at ``parts``, or MISSING (an index past the end and '-' are missing too)."""
    current = doc
    for part in parts:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current
