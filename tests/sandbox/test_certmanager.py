"""The sandbox's cert-manager (cert-manager.io/v1 served as CRDs): a Certificate is issued into
its Secret (a real X.509 certificate, cert-manager's annotations, notBefore/notAfter/
renewalTime/revision), reissued when `Issuing` is True or its renewal time has passed, and not
issued while its issuer is missing (Ready=False, IssuerNotFound)."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from kubernaut.sandbox import SandboxCluster
from kubernaut.sandbox.certmanager import parse_duration


@pytest.fixture
def sandbox() -> Iterator[SandboxCluster]:
    with SandboxCluster(tick=0.05, crds=("cert-manager.io",)) as cluster:
        yield cluster


def cert(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {
            "secretName": "web-tls",
            "dnsNames": ["web.example.com"],
            "issuerRef": {"name": "ca"},
            **spec,
        },
    }


ISSUER = {
    "apiVersion": "cert-manager.io/v1",
    "kind": "Issuer",
    "metadata": {"name": "ca", "namespace": "demo"},
    "spec": {"selfSigned": {}},
}


def status(sandbox: SandboxCluster) -> dict[str, Any]:
    return dict((sandbox.get("certificates", "demo", "web") or {}).get("status") or {})


def stamp(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def test_issue_and_manual_renewal(sandbox: SandboxCluster) -> None:
    sandbox.apply(ISSUER)
    sandbox.apply(cert())
    sandbox.wait_until(lambda: status(sandbox).get("revision") == 1)
    first = status(sandbox)
    secret = sandbox.get("secrets", "demo", "web-tls")
    assert secret is not None and secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["annotations"]["cert-manager.io/certificate-name"] == "web"
    crt = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    assert crt.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == ["web.example.com"]
    assert crt.not_valid_after_utc == stamp(first["notAfter"])
    lifetime = stamp(first["notAfter"]) - stamp(first["notBefore"])
    assert lifetime == datetime.timedelta(hours=2160)  # the default duration
    assert stamp(first["notAfter"]) - stamp(first["renewalTime"]) == lifetime / 3  # default renewBefore

    certificate = sandbox.get("certificates", "demo", "web")
    assert certificate is not None
    certificate["status"]["conditions"].append(
        {"type": "Issuing", "status": "True", "reason": "ManuallyTriggered", "message": "m"}
    )
    sandbox.apply(certificate)
    sandbox.wait_until(lambda: status(sandbox).get("revision") == 2)
    assert [c["type"] for c in status(sandbox)["conditions"]] == ["Ready"]
    renewed = sandbox.get("secrets", "demo", "web-tls")
    assert renewed is not None and renewed["data"]["tls.crt"] != secret["data"]["tls.crt"]


def test_renewal_time_passed_reissues(sandbox: SandboxCluster) -> None:
    sandbox.apply(ISSUER)
    sandbox.apply(cert(duration="4s", renewBefore="3s"))
    sandbox.wait_until(lambda: status(sandbox).get("revision") == 1)
    sandbox.wait_until(lambda: status(sandbox).get("revision") == 2, timeout=10)


def test_missing_issuer_blocks_issuance(sandbox: SandboxCluster) -> None:
    sandbox.apply(cert())
    sandbox.wait_until(lambda: status(sandbox).get("conditions"))
    (ready,) = status(sandbox)["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "IssuerNotFound")
    assert sandbox.get("secrets", "demo", "web-tls") is None
    sandbox.apply(ISSUER)
    sandbox.wait_until(lambda: status(sandbox).get("revision") == 1)


def test_parse_duration() -> None:
    assert parse_duration("720h0m0s") == datetime.timedelta(hours=720)
    assert parse_duration("90m") == datetime.timedelta(minutes=90)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("3 days")
