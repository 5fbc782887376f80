"""Sandboxed Jinja rendering of template parameters and step conditions.

Only template text (from git, trusted) is ever compiled. Alert content enters as
data in the context: a label whose value is ``{{ 7*7 }}`` is inserted as that literal
text and never evaluated, because rendered output is never rendered again.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "RenderError",
    "TemplateSyntaxError",
    "check_expression",
    "check_syntax",
    "evaluate_condition",
    "is_templated",
    "render_value",
]

_MARKERS = re.compile(r"{{|{%|{#")


class RenderError(ValueError):
    """Rendering failed; the message names the text and the reason."""


@functools.cache
def _env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    return env


def is_templated(value: Any) -> bool:
    return isinstance(value, str) and bool(_MARKERS.search(value))


def check_syntax(text: str) -> None:
    """Raise jinja2.TemplateSyntaxError (with ``lineno``) if ``text`` does not compile."""
    _env().parse(text)


def check_expression(expr: str) -> None:
    """Raise TemplateSyntaxError if ``expr`` is not a single Jinja expression."""
    _env().compile_expression(expr)


def _render_str(text: str, context: Mapping[str, Any]) -> str:
    if not is_templated(text):
        return text
    try:
        return _env().from_string(text).render(**context)
    except (UndefinedError, SecurityError, TemplateSyntaxError, TypeError, ValueError) as exc:
        raise RenderError(f"cannot render {text!r}: {exc}") from exc


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside ``value`` (dicts and lists walked); other types kept."""
    if isinstance(value, str):
        return _render_str(value, context)
    if isinstance(value, Mapping):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(v, context) for v in value]
    return value


def evaluate_condition(expr: str, context: Mapping[str, Any]) -> bool:
    """Evaluate a step condition. ``{{ ... }}`` around the expression is allowed."""
    text = expr.strip()
    if text.startswith("{{") and text.endswith("}}"):
        text = text[2:-2].strip()
    try:
        return bool(_env().compile_expression(text, undefined_to_none=False)(**context))
    except (UndefinedError, SecurityError, TemplateSyntaxError, TypeError, ValueError) as exc:
        raise RenderError(f"cannot evaluate condition {expr!r}: {exc}") from exc
