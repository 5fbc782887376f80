"""Load errors that point at the file, line, column and field that is wrong."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FieldPath = tuple[str | int, ...]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(path: FieldPath) -> str:
    """``("steps", 1, "action", "action")`` -> ``steps[1].action.action``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


@dataclass(frozen=True)
class TemplateError:
    """One problem in one template file. ``line`` and ``column`` are 1-based (0 = unknown)."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.column}" if self.column else f":{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


class TemplateLoadError(Exception):
    """A template file could not be loaded; ``errors`` has every problem found in it."""

    def __init__(self, source: Path | str, errors: Sequence[TemplateError]) -> None:
        self.source = Path(source)
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))
