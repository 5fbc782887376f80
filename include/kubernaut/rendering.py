"""Sandboxed Jinja rendering of template parameters and step conditions.

Only template text (from git, trusted) is ever compiled. Alert content enters as
data in the context: a label whose value is ``{{ 7*7 }}`` is inserted as that literal
text and never evaluated, because rendered output is never rendered again.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
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


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def referenced_names(name: str, values: Any, conditions: Iterable[str] = ()) -> frozenset[str] | None:
    """The keys of the context variable ``name`` that the templated strings in ``values`` and the
    ``conditions`` read, when every use is a constant subscript or attribute (``steps['a'].x``,
    ``steps.a``); None when the variable is used any other way (passed whole, iterated, indexed
    by an expression, assigned) or a text does not parse: the caller then assumes all keys."""
    from jinja2 import nodes

    keys: set[str] = set()
    texts = [t for t in _strings(values) if is_templated(t)]
    for expr in conditions:
        text = expr.strip()
        texts.append(text if text.startswith("{{") and text.endswith("}}") else "{{ " + text + " }}")
    for text in texts:
        if name not in text:
            continue  # cannot mention it
        try:
            tree = _env().parse(text)
        except TemplateSyntaxError:
            return None
        uses = [n for n in tree.find_all(nodes.Name) if n.name == name]
        if any(n.ctx != "load" for n in uses):
            return None
        constant = 0
        for node in tree.find_all((nodes.Getitem, nodes.Getattr)):
            assert isinstance(node, nodes.Getitem | nodes.Getattr)
            if not (isinstance(node.node, nodes.Name) and node.node.name == name):
                continue
            if isinstance(node, nodes.Getattr):
                if hasattr(dict, node.attr):  # steps.get(...), steps.items ...: the mapping itself
                    return None
                keys.add(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                keys.add(node.arg.value)
            else:
                return None
            constant += 1
        if constant != len(uses):
            return None
    return frozenset(keys)


def evaluate_condition(expr: str, context: Mapping[str, Any]) -> bool:
    """Evaluate a step condition. ``{{ ... }}`` around the expression is allowed."""
    text = expr.strip()
    if text.startswith("{{") and text.endswith("}}"):
        text = text[2:-2].strip()
    try:
        return bool(_env().compile_expression(text, undefined_to_none=False)(**context))
    except (UndefinedError, SecurityError, TemplateSyntaxError, TypeError, ValueError) as exc:
        raise RenderError(f"cannot evaluate condition {expr!r}: {exc}") from exc
