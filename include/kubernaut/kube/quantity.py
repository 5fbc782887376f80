"""Resource quantities: parse like the API, scale, and print in the canonical unit per resource."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

# apimachinery's resource.Quantity: a signed decimal number, then one suffix: binary SI
# (Ki..Ei), decimal SI (n u m "" k M G T P E) or a decimal exponent (e3, E-2). Parsed here, not
# with kubernetes.utils: that imports the whole client, and templates are validated (this runs)
# in the DAG processor, which must not pay for it.
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))((?:[KMGTPE]i)|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_DECIMAL_SI = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SI = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}


def parse(value: str | int | float) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a valid Kubernetes quantity")
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        raise ValueError(f"{value!r} is not a valid Kubernetes quantity")
    number, suffix = match.groups()
    try:
        amount = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits decimals only
        raise ValueError(f"{value!r} is not a valid Kubernetes quantity") from exc
    if not suffix:
        return amount
    if suffix in _BINARY_SI:
        return amount * Decimal(2 ** _BINARY_SI[suffix])
    if suffix in _DECIMAL_SI:
        return amount.scaleb(_DECIMAL_SI[suffix])
    return amount.scaleb(int(suffix[1:]))  # e3, E-2


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
