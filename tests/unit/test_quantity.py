"""Quantities parse as the API server's resource.Quantity does (without the kubernetes client)."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest

from kubernaut.kube.quantity import parse


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Decimal("0.1")),
        ("1Gi", Decimal(2**30)),
        ("512Mi", Decimal(512 * 2**20)),
        ("1.5G", Decimal("1.5e9")),
        ("2k", Decimal(2000)),
        ("1e3", Decimal(1000)),
        ("12E-2", Decimal("0.12")),
        ("10n", Decimal("1e-8")),
        (".5", Decimal("0.5")),
        (3, Decimal(3)),
    ],
)
def test_parses_like_the_api(text: str | int, value: Decimal) -> None:
    assert parse(text) == value


@pytest.mark.parametrize("text", ["1K", "1ki", "1Gb", "abc", "", "1 Gi", "--1"])
def test_what_the_api_refuses_is_an_error_naming_the_value(text: str) -> None:
    with pytest.raises(ValueError, match="is not a valid Kubernetes quantity"):
        parse(text)


def test_parsing_does_not_import_the_kubernetes_client() -> None:
    # templates are validated in the DAG processor: a quota's limits must not pull the client in
    code = (
        "import sys; from kubernaut.kube.quantity import parse; parse('1Gi');"
        "print('kubernetes' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
