from __future__ import annotations

from pathlib import Path

import pytest

from kubernaut.actions.registry import ActionRegistry
from kubernaut.templates import TemplateError, TemplateLoadError, load_template


def load_errors(path: Path, registry: ActionRegistry) -> list[TemplateError]:
    with pytest.raises(TemplateLoadError) as info:
        load_template(path, registry=registry)
    assert str(info.value) == "\n".join(str(e) for e in info.value.errors)
    return info.value.errors


def only_error(path: Path, registry: ActionRegistry) -> TemplateError:
    errors = load_errors(path, registry)
    assert len(errors) == 1, "\n".join(map(str, errors))
    return errors[0]


def expect(error: TemplateError, path: Path, line: int, field: str, *fragments: str) -> None:
    """The error names the file, line and field path, and its message has each fragment."""
    assert error.file == str(path)
    assert error.line == line, str(error)
    assert error.path == field, str(error)
    text = str(error)
    assert text.startswith(f"{path}:{line}:"), text
    assert f": {field}: " in text or not field, text
    for fragment in fragments:
        assert fragment in error.message, text
