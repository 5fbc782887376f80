"""Safe YAML loading that remembers where every value came from.

The document is composed into a node tree first (SafeLoader: no Python tags), so each
field path can be mapped back to a line and column, and duplicate keys - which PyYAML
silently resolves to the last one - can be reported.

This runs for every template each time Airflow parses the DAG files, so the common case is
kept cheap: plain maps, lists and scalars are built from the nodes in one pass that also
finds duplicate keys, and the path -> node index used to place errors is only built when
there is an error to place. Anything else (aliases, merge keys, collection tags) goes
through PyYAML's own constructor, with the same result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from kubernaut.templates.errors import FieldPath

# libyaml's composer is several times faster; both only build safe types.
YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TAG = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ = _TAG + "str", _TAG + "map", _TAG + "seq"
_SPECIAL_KEYS = (_TAG + "merge", _TAG + "value")  # rewritten by PyYAML's flatten_mapping


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
    root: yaml.Node | None = None
    duplicates: list[DuplicateKey] = field(default_factory=list)
    _values: dict[FieldPath, yaml.Node] | None = field(default=None, repr=False)
    _keys: dict[FieldPath, yaml.Node] = field(default_factory=dict, repr=False)

    @property
    def values(self) -> dict[FieldPath, yaml.Node]:
        """The node written at each field path (built on first use: only errors need it)."""
        if self._values is None:
            self._values = {}
            if self.root is not None:
                _index(self.root, (), self._values, self._keys, None, set())
        return self._values

    @property
    def keys(self) -> dict[FieldPath, yaml.Node]:
        """The key node of each mapping entry."""
        self.values  # noqa: B018 - builds both indexes
        return self._keys

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
    loader = YAML_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(data=None)
        doc = YamlDocument(data=None, root=node)
        try:
            doc.data = _Builder(loader, doc.duplicates).build(node, ())
        except _Unusual:
            # Indexed first: constructing merge keys (<<) rewrites the node tree.
            doc.duplicates.clear()
            doc._values = {}
            _index(node, (), doc._values, doc._keys, doc.duplicates, set())
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


class _Unusual(Exception):
    """A node the one-pass builder leaves to PyYAML's constructor (for the whole document)."""


class _Builder:
    """Plain maps, lists and scalars straight from the nodes, as SafeConstructor builds them,
    noting duplicate keys on the way (in document order, like ``_index``)."""

    def __init__(self, loader: yaml.SafeLoader, duplicates: list[DuplicateKey]) -> None:
        self.loader, self.duplicates = loader, duplicates
        self.seen: set[int] = set()
        # Scalar tags other than str use the constructor's own conversion (ints like 0x1F or
        # 1_000, floats like .inf, YAML 1.1 booleans like `on`, timestamps).
        self.scalar: Callable[[yaml.Node], Any] = loader.construct_object

    def build(self, node: yaml.Node, path: FieldPath) -> Any:
        if id(node) in self.seen:  # an alias: PyYAML shares the object, keep its semantics
            raise _Unusual
        self.seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            return node.value if node.tag == _STR else self.scalar(node)
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
            out: dict[Any, Any] = {}
            first: dict[str, yaml.Node] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag in _SPECIAL_KEYS:
                    raise _Unusual
                if key_node.value == "<<":  # a quoted "<<": _index skips it, so does the fallback
                    raise _Unusual
                name = key_node.value
                if name in first:
                    self.duplicates.append(
                        DuplicateKey((*path, name), _position(key_node), _position(first[name]))
                    )
                first[name] = key_node
                key = name if key_node.tag == _STR else self.scalar(key_node)
                out[key] = self.build(value_node, (*path, name))
            return out
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        raise _Unusual


def _index(
    node: yaml.Node,
    path: FieldPath,
    values: dict[FieldPath, yaml.Node],
    keys: dict[FieldPath, yaml.Node],
    duplicates: list[DuplicateKey] | None,
    seen: set[int],
) -> None:
    values[path] = node
    # An alias reuses a node: index it once, so recursive or "billion laughs" aliases stay cheap.
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            key = key_node.value
            if key in first and duplicates is not None:
                duplicates.append(DuplicateKey((*path, key), _position(key_node), _position(first[key])))
            first[key] = key_node
            keys[(*path, key)] = key_node
            _index(value_node, (*path, key), values, keys, duplicates, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), values, keys, duplicates, seen)


def declared_name(text: bytes | str) -> object:
    """The top-level ``name`` a template file's text declares (unvalidated), or None when it
    is not a readable YAML mapping."""
    try:
        data = yaml.load(text, Loader=YAML_LOADER)
    except (yaml.YAMLError, RecursionError, ValueError):
        return None
    return data.get("name") if isinstance(data, dict) else None
