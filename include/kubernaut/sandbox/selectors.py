"""Label and field selectors with the real API's grammar and matching rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernaut.sandbox.errors import bad_request


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":  # a missing label satisfies negative requirements, as in the real API
                return not present or value not in self.values
            case "exists":
                return present
            case "!":
                return not present
            case "gt" | "lt":
                try:
                    number, bound = int(value or ""), int(self.values[0])
                except ValueError:
                    return False
                return number > bound if self.operator == "gt" else number < bound
        return False  # pragma: no cover  # operators are validated at parsing


_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*({_KEY})\s*(==|=|!=|>|<)\s*({_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def _split_requirements(selector: str) -> list[str]:
    """Split on commas that are not inside `in (a,b)` value sets."""
    parts: list[str] = []
    depth, start = 0, 0
    for index, char in enumerate(selector):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(selector[start:index])
            start = index + 1
    parts.append(selector[start:])
    return [part for part in parts if part.strip()]


def parse_label_selector(selector: str | None) -> list[Requirement]:
    requirements: list[Requirement] = []
    for part in _split_requirements(selector or ""):
        if match := _SET_RE.match(part):
            values = tuple(v.strip() for v in match.group(3).split(",") if v.strip())
            requirements.append(Requirement(match.group(1), match.group(2), values))
        elif match := _EQ_RE.match(part):
            operator = {"==": "=", ">": "gt", "<": "lt"}.get(match.group(2), match.group(2))
            requirements.append(Requirement(match.group(1), operator, (match.group(3),)))
        elif match := _EXISTS_RE.match(part):
            requirements.append(Requirement(match.group(2), "!" if match.group(1) else "exists"))
        else:
            raise bad_request(f"unable to parse requirement: {part.strip()!r}")
    return requirements


def labels_match(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    return all(requirement.matches(labels or {}) for requirement in requirements)


def label_selector_from_object(selector: Mapping[str, Any] | None) -> list[Requirement]:
    """Convert a `metav1.LabelSelector` (matchLabels/matchExpressions) into requirements."""
    requirements: list[Requirement] = []
    for key, value in ((selector or {}).get("matchLabels") or {}).items():
        requirements.append(Requirement(key, "=", (str(value),)))
    for expression in (selector or {}).get("matchExpressions") or []:
        operator = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}[
            expression["operator"]
        ]
        requirements.append(Requirement(expression["key"], operator, tuple(expression.get("values") or ())))
    return requirements


def selector_to_string(selector: Mapping[str, Any] | None) -> str:
    """Render a LabelSelector as the string the real API puts into `Scale.status.selector`."""
    rendered: list[str] = []
    for requirement in label_selector_from_object(selector):
        match requirement.operator:
            case "=":
                rendered.append(f"{requirement.key}={requirement.values[0]}")
            case "in" | "notin":
                rendered.append(f"{requirement.key} {requirement.operator} ({','.join(requirement.values)})")
            case "exists":
                rendered.append(requirement.key)
            case "!":
                rendered.append(f"!{requirement.key}")
    return ",".join(rendered)


# Field selectors: the real API supports only a few fields per resource and rejects the rest.
_COMMON_FIELDS = {"metadata.name", "metadata.namespace"}
SUPPORTED_FIELDS: dict[str, set[str]] = {
    "pods": {
        "spec.nodeName",
        "status.phase",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.podIP",
        "status.nominatedNodeName",
        "spec.hostNetwork",
    },
    "nodes": {"spec.unschedulable"},
    "namespaces": {"status.phase"},
    "secrets": {"type"},
    "replicasets": {"status.replicas"},
    "jobs": {"status.successful"},
    "events": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
}


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    negated: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (field_value(obj, self.path) == self.value) != self.negated


def field_value(obj: Mapping[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, Mapping) else None
    if isinstance(current, bool):
        return "true" if current else "false"
    return "" if current is None else str(current)


def parse_field_selector(selector: str | None, plural: str) -> list[FieldRequirement]:
    requirements: list[FieldRequirement] = []
    allowed = _COMMON_FIELDS | SUPPORTED_FIELDS.get(plural, set())
    for part in _split_requirements(selector or ""):
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(\S*)\s*$", part)
        if not match:
            raise bad_request(f"invalid field selector: {part.strip()!r}")
        path, operator, value = match.groups()
        if path not in allowed:
            raise bad_request(f"field label not supported: {path}")
        requirements.append(FieldRequirement(path, operator == "!=", value))
    return requirements


def fields_match(requirements: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all(requirement.matches(obj) for requirement in requirements)
