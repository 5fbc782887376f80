"""What a Jinja text refers to, for load-time syntax and reference checks.

Besides the top-level names, the ``params.X`` and ``steps['x']`` lookups are pulled
out so typos are caught before a run. Results depend only on the text, so they are
memoized (bounded): the same ``{{ alert.namespace }}`` appears in most steps, and
parsing is most of the loading time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from jinja2 import Environment, TemplateSyntaxError, nodes

from kubernaut.rendering import check_expression, check_syntax

# Syntax-only parser for the AST walk (the sandbox changes runtime behaviour, not the grammar).
_PARSER = Environment()
JINJA_GLOBALS = frozenset(_PARSER.globals)
CONTEXT_NAMES = ("alert", "params", "steps")


@dataclass(frozen=True)
class Analysis:
    """``error``/``error_line``: syntax error (line inside the text); else the references."""

    error: str | None = None
    error_line: int = 0
    names: frozenset[str] = field(default_factory=frozenset)  # top-level names not defined in the text
    params: frozenset[str] = field(default_factory=frozenset)
    steps: frozenset[str] = field(default_factory=frozenset)


def _constant_key(node: nodes.Node, root: str) -> str | None:
    """``root.X`` or ``root['X']`` -> X."""
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name) and node.node.name == root:
        return node.attr
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.node, nodes.Name)
        and node.node.name == root
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        return node.arg.value
    return None


def _references(text: str) -> Analysis:
    ast = _PARSER.parse(text)
    loaded = {n.name for n in ast.find_all(nodes.Name) if n.ctx == "load"}
    local = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    params, steps = set(), set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        if (key := _constant_key(node, "params")) is not None:
            params.add(key)
        elif (key := _constant_key(node, "steps")) is not None:
            steps.add(key)
    return Analysis(
        names=frozenset(loaded - local - JINJA_GLOBALS), params=frozenset(params), steps=frozenset(steps)
    )


@functools.lru_cache(maxsize=4096)
def analyze_template(text: str) -> Analysis:
    """A parameter string (a Jinja template)."""
    try:
        check_syntax(text)
    except TemplateSyntaxError as exc:
        return Analysis(error=f"Jinja syntax error: {exc.message}", error_line=exc.lineno)
    return _references(text)


@functools.lru_cache(maxsize=4096)
def analyze_condition(text: str) -> Analysis:
    """A step condition: one expression, optionally wrapped in ``{{ }}``."""
    expr = text.strip()
    if expr.startswith("{{") and expr.endswith("}}"):  # same rule as rendering.evaluate_condition
        expr = expr[2:-2].strip()
    try:
        check_expression(expr)
    except TemplateSyntaxError as exc:
        return Analysis(error=f"Jinja syntax error in condition: {exc.message}", error_line=exc.lineno)
    return _references("{{ " + expr + " }}")
