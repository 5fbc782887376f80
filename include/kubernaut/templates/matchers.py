"""Prometheus/Alertmanager label matchers: ``name="v"``, ``!=``, ``=~``, ``!~``.

Regexes are fully anchored, as in Prometheus: ``severity=~"warn"`` does not match
``warning``. A missing label matches as the empty string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

MatchOp = Literal["=", "!=", "=~", "!~"]

_SYNTAX = re.compile(
    r"""^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*
    (?:"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>(?:[^'\\]|\\.)*)'|(?P<bare>[^\s"',{}]*))\s*$""",
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(.)")
MATCHER_PATTERN = r"""^\s*[A-Za-z_][A-Za-z0-9_]*\s*(=~|!~|!=|=)\s*.*$"""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse ``label<op>"value"``; raise ValueError saying what was expected."""
        m = _SYNTAX.match(text)
        if m is None:
            raise ValueError(
                f'invalid matcher {text!r}: expected label<op>"value" with <op> one of = != =~ !~, '
                'e.g. severity=~"warning|critical"'
            )
        raw = m.group("dq") if m.group("dq") is not None else m.group("sq")
        value = _unescape(raw) if raw is not None else m.group("bare") or ""
        op: MatchOp = m.group("op")  # type: ignore[assignment]  # regex guarantees one of the four
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(f"(?:{value})")
            except re.error as exc:
                raise ValueError(f"invalid regular expression in matcher {text!r}: {exc}") from None
        return cls(m.group("name"), op, value, regex)

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def _unescape(text: str) -> str:
    # Unknown escapes keep their backslash, so regex escapes like \. survive.
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), text)


def _to_matcher(value: object) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if not isinstance(value, str):
        raise ValueError(f'expected a matcher string like severity="critical", got {value!r}')
    return Matcher.parse(value)


MatcherField = Annotated[
    Matcher,
    BeforeValidator(_to_matcher),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": MATCHER_PATTERN,
            "description": 'Prometheus label matcher, e.g. severity=~"warning|critical"',
        }
    ),
]
