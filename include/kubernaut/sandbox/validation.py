"""Object validation the real API server does on create, update and patch, for the fields the
sandbox's users write: container resources (quantities, requests within limits)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from kubernaut.sandbox import errors
from kubernaut.sandbox.errors import ApiError
from kubernaut.sandbox.resources import ResourceSpec

# Requests may be below the limit only for these (helper.IsOvercommitAllowed); for the others
# (hugepages-*, extended resources such as nvidia.com/gpu) a request must equal its limit.
OVERCOMMITTABLE = ("cpu", "memory", "ephemeral-storage")
QUANTITY_PATTERN = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"

Problem = tuple[str, str, str]  # (field path, value, why)


def pod_spec_paths(spec: ResourceSpec, obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The pod specs inside an object, with their field paths (a Pod's own, a template's)."""
    body = obj.get("spec")
    if not isinstance(body, dict):
        return []
    if spec.plural == "pods":
        return [("spec", body)]
    if spec.plural in ("deployments", "replicasets", "statefulsets", "daemonsets", "jobs"):
        template = (body.get("template") or {}).get("spec")
        return [("spec.template.spec", template)] if isinstance(template, dict) else []
    if spec.plural == "cronjobs":
        template = (((body.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
        return [("spec.jobTemplate.spec.template.spec", template)] if isinstance(template, dict) else []
    return []


def _quantity(value: Any) -> Decimal:
    try:
        return Decimal(parse_quantity(value))
    except ValueError as exc:
        # The real API fails to decode such a body (400), before any validation.
        raise errors.bad_request(
            f"quantities must match the regular expression '{QUANTITY_PATTERN}'"
        ) from exc


def resource_problems(path: str, resources: dict[str, Any]) -> list[Problem]:
    """As ValidateResourceRequirements: no negative quantity; a request at most its limit."""
    problems: list[Problem] = []
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for section, values in (("limits", limits), ("requests", requests)):
        for name, value in values.items():
            if _quantity(value) < 0:
                problems.append(
                    (f"{path}.{section}[{name}]", str(value), "must be greater than or equal to 0")
                )
    for name, value in requests.items():
        if name not in limits:
            continue
        request, limit = _quantity(value), _quantity(limits[name])
        if name not in OVERCOMMITTABLE and request != limit:
            problems.append(
                (f"{path}.requests", str(value), f"must be equal to {name} limit of {limits[name]}")
            )
        elif request > limit:
            problems.append(
                (
                    f"{path}.requests",
                    str(value),
                    f"must be less than or equal to {name} limit of {limits[name]}",
                )
            )
    return problems


def validate_object(spec: ResourceSpec, obj: dict[str, Any]) -> None:
    """Raise the API's 422 Invalid (every problem a cause) for an object it would refuse."""
    problems: list[Problem] = []
    for base, pod_spec in pod_spec_paths(spec, obj):
        for group in ("initContainers", "containers"):
            for index, container in enumerate(pod_spec.get(group) or []):
                resources = container.get("resources") if isinstance(container, dict) else None
                if isinstance(resources, dict):
                    problems += resource_problems(f"{base}.{group}[{index}].resources", resources)
    if problems:
        meta = obj.get("metadata") or {}
        raise invalid(spec, str(meta.get("name") or meta.get("generateName") or ""), problems)


def invalid(spec: ResourceSpec, name: str, problems: list[Problem]) -> ApiError:
    """A 422 like the API's: one cause per problem; the message lists them (in brackets if several)."""
    if len(problems) == 1:
        return errors.invalid(spec, name, *problems[0])
    group_kind = f"{spec.kind}.{spec.group}" if spec.group else spec.kind
    causes = [
        {"reason": "FieldValueInvalid", "message": f'Invalid value: "{value}": {why}', "field": field}
        for field, value, why in problems
    ]
    listed = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
    details: dict[str, Any] = {"name": name, "kind": spec.kind, "causes": causes}
    if spec.group:
        details["group"] = spec.group
    return ApiError(422, "Invalid", f'{group_kind} "{name}" is invalid: [{listed}]', details)
