"""Resource quantities: parse like the API, scale, and print in the canonical unit per resource."""

from __future__ import annotations

import math
from decimal import Decimal

from kubernetes.utils import parse_quantity


def parse(value: str | int | float) -> Decimal:
    try:
        return Decimal(parse_quantity(value))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid Kubernetes quantity") from exc


def format_cpu(cores: Decimal) -> str:
    """CPU in millicores, rounded up (the API's smallest CPU unit is 1m)."""
    return f"{math.ceil(cores * 1000)}m"


def format_memory(size: Decimal) -> str:
    """Bytes rounded up to whole Mi (binary units are what people read in manifests)."""
    mebibytes = math.ceil(size / (1024 * 1024))
    return f"{mebibytes}Mi"


def format_quantity(resource: str, value: Decimal) -> str:
    return format_cpu(value) if resource == "cpu" else format_memory(value)


def scaled(resource: str, value: str, factor: float) -> str:
    return format_quantity(resource, parse(value) * Decimal(str(factor)))
