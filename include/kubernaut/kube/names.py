"""Kubernetes name validation (DNS-1123), applied to rendered parameters before any API call."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_dns1123_label(value: str) -> str:
    if len(value) > 63 or not _LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes name (DNS-1123 label: at most 63 lowercase "
            "letters, digits or '-', starting and ending with a letter or digit)"
        )
    return value


def check_dns1123_subdomain(value: str) -> str:
    if len(value) > 253 or not _SUBDOMAIN.match(value):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes name (DNS-1123 subdomain: at most 253 lowercase "
            "letters, digits, '-' or '.', starting and ending with a letter or digit)"
        )
    return value


NamespaceName = Annotated[
    str,
    AfterValidator(check_dns1123_label),
    Field(description="Namespace (DNS-1123 label)", max_length=63),
]
ObjectName = Annotated[
    str,
    AfterValidator(check_dns1123_subdomain),
    Field(description="Object name (DNS-1123 subdomain)", max_length=253),
]
