"""Kubernetes `Status` errors with the same codes, reasons and details as the real API server."""

from __future__ import annotations

from typing import Any

import attrs
from kmock import KubernetesError

from kubernaut.sandbox.resources import ResourceSpec


@attrs.frozen
class ApiError(KubernetesError):
    """A KubernetesError rendered by the emulator as a `Status` object (no traceback in details)."""

    def status_body(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message or "",
            "reason": self.reason or "",
            "details": self.details or {},
            "code": self.status,
        }


def _details(spec: ResourceSpec | None, name: str | None, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if spec is not None:
        if spec.group:
            details["group"] = spec.group
        details["kind"] = spec.plural
    details.update(extra)
    return details


def not_found(spec: ResourceSpec, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{spec.display} "{name}" not found', _details(spec, name))


def namespace_not_found(name: str) -> ApiError:
    return ApiError(404, "NotFound", f'namespaces "{name}" not found', {"name": name, "kind": "namespaces"})


def already_exists(spec: ResourceSpec, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{spec.display} "{name}" already exists', _details(spec, name))


def conflict(spec: ResourceSpec, name: str) -> ApiError:
    message = (
        f'Operation cannot be fulfilled on {spec.display} "{name}": the object has been modified;'
        " please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", message, _details(spec, name))


def invalid(spec: ResourceSpec, name: str, field: str, value: Any, why: str) -> ApiError:
    group_kind = f"{spec.kind}.{spec.group}" if spec.group else spec.kind
    cause_message = f"Invalid value: {value!r}: {why}".replace("'", '"')
    details = _details(
        spec,
        name,
        kind=spec.kind,
        causes=[
            {"reason": "FieldValueInvalid", "message": cause_message, "field": field},
        ],
    )
    return ApiError(422, "Invalid", f'{group_kind} "{name}" is invalid: {field}: {cause_message}', details)


def unprocessable(message: str) -> ApiError:
    return ApiError(422, "Invalid", message, {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message, {})


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message, {})


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}", {}
    )


def too_many_requests(message: str, causes: list[dict[str, str]]) -> ApiError:
    return ApiError(429, "TooManyRequests", message, {"causes": causes})


def endpoint_not_found(path: str) -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {"path": path})
