"""Safe YAML loading that remembers where every value came from.

The document is composed into a node tree first (SafeLoader: no Python tags), so each
field path can be mapped back to a line and column, and duplicate keys - which PyYAML
silently resolves to the last one - can be reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from kubernaut.templates.errors import FieldPath

# libyaml's composer is several times faster; both only build safe types.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Position:
    """1-based line and column."""

    line: int
    column: int


@dataclass
class DuplicateKey:
    path: FieldPath
    position: Position
    first: Position


@dataclass
class YamlDocument:
    data: Any
    values: dict[FieldPath, yaml.Node] = field(default_factory=dict)
    keys: dict[FieldPath, yaml.Node] = field(default_factory=dict)
    duplicates: list[DuplicateKey] = field(default_factory=list)

    def position(self, path: FieldPath, *, key: bool = False) -> Position:
        """Where ``path`` is written; falls back to the nearest enclosing node."""
        if key and path in self.keys:
            return _position(self.keys[path])
        for end in range(len(path), -1, -1):
            node = self.values.get(path[:end])
            if node is not None:
                return _position(node)
        return Position(1, 1)

    def value_line_offset(self, path: FieldPath) -> int:
        """Line of a scalar's first text line (block scalars start on the next line)."""
        node = self.values.get(path)
        if node is None:
            return self.position(path).line
        style = getattr(node, "style", None)
        return _position(node).line + (1 if style in ("|", ">") else 0)


def _position(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class YamlSyntaxError(Exception):
    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def load_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; raise YamlSyntaxError with the parser's position."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(data=None)
        doc = YamlDocument(data=None)
        _index(node, (), doc)
        doc.data = loader.construct_document(node)
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        message = exc.problem or "syntax error"
        if exc.context:
            started = f" started at line {exc.context_mark.line + 1}" if exc.context_mark else ""
            message += f" ({exc.context}{started})"
        raise YamlSyntaxError(f"invalid YAML: {message}", position) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"invalid YAML: {exc}", Position(1, 1)) from exc
    finally:
        loader.dispose()


def _index(node: yaml.Node, path: FieldPath, doc: YamlDocument, seen: set[int] | None = None) -> None:
    doc.values[path] = node
    # An alias reuses a node: index it once, so recursive or "billion laughs" aliases stay cheap.
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            key = key_node.value
            if key in first:
                doc.duplicates.append(DuplicateKey((*path, key), _position(key_node), _position(first[key])))
            first[key] = key_node
            doc.keys[(*path, key)] = key_node
            _index(value_node, (*path, key), doc, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), doc, seen)
