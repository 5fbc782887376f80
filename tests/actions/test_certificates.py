"""renew_certificate against the sandbox over HTTP (its cert-manager controller): a certificate
close to expiry is reissued as `cmctl renew` triggers it (Issuing=True, ManuallyTriggered, via
the status subresource); the Secret then holds a new X.509 certificate; dry run; no undo
(journaled as such); a missing issuer fails the wait with cert-manager's reason."""

from __future__ import annotations

import base64
import datetime
import logging
from typing import Any

import pytest
from cryptography import x509

from kubernaut.actions import ActionContext, VerificationFailed
from kubernaut.config import KubernautConfig
from kubernaut.sandbox import SandboxCluster
from tests.actions.k8s_helpers import must_get, run


@pytest.fixture
def crds() -> tuple[str, ...]:
    return ("cert-manager.io",)


@pytest.fixture
def ctx(cluster: SandboxCluster) -> ActionContext:
    return ActionContext(
        timeout=30, poll_interval=0.1, logger=logging.getLogger("test"), _config=KubernautConfig()
    )


def certificate(issuer: str = "ca") -> dict[str, Any]:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {
            "name": "web",
            "namespace": "demo",
            "annotations": {"sandbox.kubernaut.io/expires-in": "240h"},  # issued 80 days ago
        },
        "spec": {
            "secretName": "web-tls",
            "dnsNames": ["web.example.com"],
            "issuerRef": {"name": issuer, "kind": "Issuer"},
            "duration": "2160h",
            "renewBefore": "168h",
        },
    }


def not_after(cluster: SandboxCluster) -> datetime.datetime:
    secret = must_get(cluster, "secrets", "demo", "web-tls")
    return x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"])).not_valid_after_utc


def revision(cluster: SandboxCluster) -> int:
    return int((must_get(cluster, "certificates", "demo", "web").get("status") or {}).get("revision") or 0)


def test_renew_reissues_the_certificate(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext
) -> None:
    cluster.apply(
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": "ca", "namespace": "demo"},
            "spec": {"selfSigned": {}},
        }
    )
    cluster.apply(certificate())
    cluster.wait_until(lambda: revision(cluster) == 1)
    now = datetime.datetime.now(tz=datetime.UTC)
    assert datetime.timedelta(days=9) < not_after(cluster) - now < datetime.timedelta(days=11)

    _, _, dry = run(dry_ctx, "renew_certificate", namespace="demo", certificate="web")
    assert not dry.changed and revision(cluster) == 1
    assert not [
        c
        for c in must_get(cluster, "certificates", "demo", "web")["status"]["conditions"]
        if c["type"] == "Issuing"
    ]

    journal: list[dict[str, Any]] = []
    ctx.save_undo = journal.append
    _, _, result = run(ctx, "renew_certificate", namespace="demo", certificate="web")
    assert len(journal) == 1 and "cannot be withdrawn" in journal[0]["no_undo"]
    assert result.output["revision_before"] == 1 and result.output["revision"] == 2
    assert not_after(cluster) - now > datetime.timedelta(days=89)  # a full new 90-day certificate
    status = must_get(cluster, "certificates", "demo", "web")["status"]
    assert status["notAfter"] == not_after(cluster).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [c["type"] for c in status["conditions"]] == ["Ready"]  # Issuing is done


def test_renew_triggers_like_cmctl_and_reports_a_missing_issuer(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    cluster.apply(
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": "ca", "namespace": "demo"},
            "spec": {"selfSigned": {}},
        }
    )
    cluster.apply(certificate())
    cluster.wait_until(lambda: revision(cluster) == 1)
    cluster.delete("issuers", "demo", "ca")  # nothing can issue now: the trigger stays visible
    with pytest.raises(VerificationFailed, match='Referenced "Issuer" not found: ca'):
        run(ctx, "renew_certificate", namespace="demo", certificate="web")
    conditions = {
        c["type"]: c for c in must_get(cluster, "certificates", "demo", "web")["status"]["conditions"]
    }
    issuing = conditions["Issuing"]
    assert (issuing["status"], issuing["reason"], issuing["message"]) == (
        "True",
        "ManuallyTriggered",
        "Certificate re-issuance manually triggered",
    )
    assert revision(cluster) == 1 and conditions["Ready"]["reason"] == "IssuerNotFound"
