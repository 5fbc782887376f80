"""A small cert-manager (``cert-manager.io/v1``) for the sandbox: Certificates are issued into
their ``spec.secretName`` Secret (type ``kubernetes.io/tls``, a real self-signed X.509
certificate with an EC key, the ``cert-manager.io/*`` annotations cert-manager writes).

A Certificate is (re)issued, as cert-manager's trigger controller decides, when its Secret is
missing, when its ``Issuing`` condition is True (set by the trigger or by ``cmctl renew``:
reason ``ManuallyTriggered``), or when ``status.renewalTime`` has passed; never while its
issuer (``spec.issuerRef``: an Issuer in its namespace or a ClusterIssuer) is missing — then
it reports ``Ready=False``, reason ``IssuerNotFound``. After issuance: ``Ready=True``, the
``Issuing`` condition removed, ``status.notBefore``/``notAfter``/``renewalTime``/``revision``.

``spec.duration`` (default 2160h) and ``spec.renewBefore`` (default a third of the duration)
as in cert-manager. The sandbox-only annotation ``sandbox.kubernaut.io/expires-in`` (a Go
duration) makes the *first* issuance expire that soon (a seeded certificate close to expiry).
"""

from __future__ import annotations

import base64
import copy
import datetime
import re
from typing import TYPE_CHECKING, Any

from kubernaut.sandbox.resources import resolve

if TYPE_CHECKING:
    from kubernaut.sandbox.controller import Controller

CERTIFICATES = resolve("certificates.cert-manager.io")
ISSUERS = resolve("issuers.cert-manager.io")
CLUSTERISSUERS = resolve("clusterissuers.cert-manager.io")
SECRETS = resolve("secrets")

EXPIRES_IN = "sandbox.kubernaut.io/expires-in"
DEFAULT_DURATION = datetime.timedelta(hours=2160)
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> datetime.timedelta:
    """A Go duration as cert-manager takes it (``2160h``, ``720h0m0s``, ``90m``)."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (e.g. 2160h, 720h0m0s)")
    return datetime.timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def _stamp(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_stamp(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def _conditions(cert: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in (cert.get("status") or {}).get("conditions") or []}


def reconcile(ctl: Controller) -> None:
    for cert in ctl.store.list(CERTIFICATES):
        if not cert["metadata"].get("deletionTimestamp"):
            _certificate(ctl, cert)


def _issuer(ctl: Controller, cert: dict[str, Any]) -> dict[str, Any] | None:
    ref = cert["spec"].get("issuerRef") or {}
    if ref.get("kind") == "ClusterIssuer":
        return ctl.store.get(CLUSTERISSUERS, None, str(ref.get("name", "")))
    return ctl.store.get(ISSUERS, cert["metadata"]["namespace"], str(ref.get("name", "")))


def _certificate(ctl: Controller, cert: dict[str, Any]) -> None:
    meta, spec = cert["metadata"], cert["spec"]
    status = copy.deepcopy(cert.get("status") or {})
    conditions = _conditions(cert)
    secret = ctl.store.get(SECRETS, meta["namespace"], str(spec.get("secretName", "")))
    now = datetime.datetime.now(tz=datetime.UTC)
    renewal = status.get("renewalTime")
    issuing = (conditions.get("Issuing") or {}).get("status") == "True"
    due = secret is None or issuing or (renewal is not None and _parse_stamp(renewal) <= now)
    if not due:
        return
    if _issuer(ctl, cert) is None:
        ref = spec.get("issuerRef") or {}
        message = f'Referenced "{ref.get("kind", "Issuer")}" not found: {ref.get("name")}'
        ready = {"type": "Ready", "status": "False", "reason": "IssuerNotFound", "message": message}
        if conditions.get("Ready", {}).get("reason") != "IssuerNotFound":
            ready["lastTransitionTime"] = _stamp(now)
            others = [c for t, c in conditions.items() if t != "Ready"]
            ctl._set_status(CERTIFICATES, cert, {**status, "conditions": [ready, *others]})
        return
    duration = parse_duration(str(spec.get("duration") or "2160h"))
    renew_before = parse_duration(str(spec["renewBefore"])) if spec.get("renewBefore") else duration / 3
    first = not status.get("revision")
    lifetime = duration
    expires_in = (meta.get("annotations") or {}).get(EXPIRES_IN)
    if first and expires_in:
        lifetime = parse_duration(expires_in)
    not_after = now + lifetime
    not_before = not_after - duration
    revision = int(status.get("revision") or 0) + 1
    _write_secret(ctl, cert, secret, not_before, not_after, revision)
    ready_cond = {
        "type": "Ready",
        "status": "True",
        "reason": "Ready",
        "message": "Certificate is up to date and has not expired",
        "lastTransitionTime": _stamp(now),
        "observedGeneration": meta.get("generation", 1),
    }
    new_status = {
        "conditions": [ready_cond],
        "notBefore": _stamp(not_before),
        "notAfter": _stamp(not_after),
        "renewalTime": _stamp(not_after - renew_before),
        "revision": revision,
    }
    ctl._set_status(CERTIFICATES, cert, new_status)
    ctl.event(cert, "Issuing", "The certificate has been successfully issued")


def _write_secret(
    ctl: Controller,
    cert: dict[str, Any],
    secret: dict[str, Any] | None,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    revision: int,
) -> None:
    meta, spec = cert["metadata"], cert["spec"]
    crt, key = self_signed(spec, not_before, not_after, revision)
    ref = spec.get("issuerRef") or {}
    names = [str(n) for n in spec.get("dnsNames") or []]
    annotations = {
        "cert-manager.io/certificate-name": meta["name"],
        "cert-manager.io/issuer-name": str(ref.get("name", "")),
        "cert-manager.io/issuer-kind": str(ref.get("kind", "Issuer")),
        "cert-manager.io/issuer-group": str(ref.get("group", "cert-manager.io")),
        "cert-manager.io/common-name": str(spec.get("commonName", "")),
        "cert-manager.io/alt-names": ",".join(names),
    }
    body: dict[str, Any] = {
        "metadata": {
            "name": spec["secretName"],
            "namespace": meta["namespace"],
            "annotations": annotations,
        },
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(crt).decode(),
            "tls.key": base64.b64encode(key).decode(),
            "ca.crt": base64.b64encode(crt).decode(),
        },
    }
    if secret is None:
        ctl.store.create(SECRETS, body)
        return
    updated = copy.deepcopy(secret)
    updated["metadata"].setdefault("annotations", {}).update(annotations)
    updated["type"], updated["data"] = body["type"], body["data"]
    ctl._write(SECRETS, updated)


def self_signed(
    spec: dict[str, Any], not_before: datetime.datetime, not_after: datetime.datetime, serial: int
) -> tuple[bytes, bytes]:
    """A PEM certificate and PEM EC key for the Certificate's names (what an issuer returns)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names = [str(n) for n in spec.get("dnsNames") or []]
    common = str(spec.get("commonName") or (names[0] if names else "sandbox"))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common[:64])])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number() ^ serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
    crt = builder.sign(key, hashes.SHA256())
    return (
        crt.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


__all__ = ["EXPIRES_IN", "parse_duration", "reconcile", "self_signed"]
