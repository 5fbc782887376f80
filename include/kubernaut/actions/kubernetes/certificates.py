"""cert-manager Certificates: renew one now, as ``cmctl renew`` does.

``cmctl renew`` sets the Certificate's ``Issuing`` condition to True, reason
``ManuallyTriggered``, through the status subresource; cert-manager's issuing controller then
issues a new certificate into the Secret and bumps ``status.revision``. A Certificate already
``Issuing`` is left alone (a renewal is under way). The step waits until the revision is past
the one it saw and the Certificate is Ready again.

There is no undo: the old certificate is superseded and a certificate cannot be un-issued
(the previous key pair is not kept unless ``spec.privateKey.rotationPolicy: Never``; an older
certificate is never put back into the Secret). A failed renewal leaves the old certificate
in place, which is what rolling back would aim for anyway.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult, VerificationFailed
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Target

GROUP, VERSION, PLURAL = "cert-manager.io", "v1", "certificates"
REASON, MESSAGE = "ManuallyTriggered", "Certificate re-issuance manually triggered"


class RenewCertificateParams(ActionParams):
    namespace: NamespaceName
    certificate: ObjectName
    wait_timeout: float = Field(default=300, gt=0, description="Seconds to wait for the new certificate")


def _conditions(cert: dict[str, Any]) -> list[dict[str, Any]]:
    return list((cert.get("status") or {}).get("conditions") or [])


def issuing(cert: dict[str, Any]) -> bool:
    return any(c.get("type") == "Issuing" and c.get("status") == "True" for c in _conditions(cert))


@register
class RenewCertificate(Action[RenewCertificateParams]):
    kind = "kubernetes"
    name = "renew_certificate"
    Params = RenewCertificateParams
    mutating = True
    summary = "Renew a cert-manager Certificate now (as `cmctl renew`); waits for the new revision."
    changes = (
        "Certificate status condition `Issuing=True`, reason ManuallyTriggered (status subresource, "
        "resourceVersion); cert-manager reissues into the Secret"
    )
    undo_doc = (
        "none: a certificate cannot be un-issued and the old one is superseded (recorded not_restorable)"
    )
    dry_run_doc = "`dryRun=All` status patch"

    def no_undo_reason(self, params: RenewCertificateParams) -> str:
        return (
            f"renew_certificate reissued certificate {params.namespace}/{params.certificate}: an issued "
            "certificate cannot be withdrawn and the previous one is not put back "
            "(nor needed: it was about to expire)"
        )

    def targets(self, ctx: ActionContext, params: RenewCertificateParams) -> list[Target]:
        return [Target("Certificate", params.namespace, params.certificate)]

    def _read(self, ctx: ActionContext, params: RenewCertificateParams) -> dict[str, Any]:
        from kubernaut.kube.objects import read_object

        return read_object(ctx.api_client, "Certificate", params.namespace, params.certificate)

    def precheck(self, ctx: ActionContext, params: RenewCertificateParams) -> None:
        self._read(ctx, params)  # NotFound names it

    def run(self, ctx: ActionContext, params: RenewCertificateParams) -> ActionResult:
        from kubernaut.kube.errors import retry_on_conflict

        def attempt() -> ActionResult:
            cert = self._read(ctx, params)
            status = cert.get("status") or {}
            revision = int(status.get("revision") or 0)
            output = {
                "certificate": params.certificate,
                "revision_before": revision,
                "not_after_before": status.get("notAfter"),
                "dry_run": ctx.dry_run,
            }
            already = issuing(cert)  # a renewal under way (a retried step's, or cert-manager's own)
            if not already:
                self._trigger(ctx, params, cert)
            output["already_issuing"] = already
            wait = ctx.wait(
                "certificate_issued",
                {"namespace": params.namespace, "name": params.certificate, "revision": revision},
                what=f"certificate {params.namespace}/{params.certificate} past revision {revision}, Ready",
                within=params.wait_timeout,
            )
            return ActionResult(output=output, undo=ctx.prior_undo, changed=not ctx.dry_run, wait=wait)

        return retry_on_conflict(attempt)

    def _trigger(self, ctx: ActionContext, params: RenewCertificateParams, cert: dict[str, Any]) -> None:
        import datetime

        from kubernaut.kube.clients import MERGE_PATCH, custom, dry
        from kubernaut.kube.errors import api_errors

        condition = {
            "type": "Issuing",
            "status": "True",
            "reason": REASON,
            "message": MESSAGE,
            "lastTransitionTime": datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "observedGeneration": cert["metadata"].get("generation", 1),
        }
        others = [c for c in _conditions(cert) if c.get("type") != "Issuing"]
        # conditions is a plain list in a custom resource: the whole list, guarded by the version
        body = {
            "metadata": {"resourceVersion": cert["metadata"]["resourceVersion"]},
            "status": {"conditions": [*others, condition]},
        }
        with api_errors(f"certificate {params.namespace}/{params.certificate}"):
            custom(ctx).patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                params.namespace,
                PLURAL,
                params.certificate,
                body,
                _content_type=MERGE_PATCH,
                **dry(ctx),
            )

    def after_wait(
        self, ctx: ActionContext, params: RenewCertificateParams, result: ActionResult, outcome: Any
    ) -> ActionResult:
        result = super().after_wait(ctx, params, result, outcome)
        detail = outcome.detail if isinstance(outcome.detail, dict) else {}
        result.output = {
            **result.output,
            "revision": detail.get("revision"),
            "not_after": detail.get("notAfter"),
        }
        return result

    def verify(self, ctx: ActionContext, params: RenewCertificateParams, result: ActionResult) -> None:
        """The Secret holds a certificate that expires at the Certificate's new notAfter."""
        import base64
        import datetime

        from cryptography import x509

        from kubernaut.kube.objects import read_object

        cert = self._read(ctx, params)
        status = cert.get("status") or {}
        secret = read_object(ctx.api_client, "Secret", params.namespace, cert["spec"]["secretName"])
        pem = base64.b64decode((secret.get("data") or {}).get("tls.crt", ""))
        try:
            not_after = x509.load_pem_x509_certificate(pem).not_valid_after_utc
        except ValueError as exc:
            raise VerificationFailed(
                f"secret {params.namespace}/{cert['spec']['secretName']}: no certificate: {exc}"
            ) from exc
        wanted = datetime.datetime.strptime(str(status.get("notAfter")), "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.UTC
        )
        if abs((not_after - wanted).total_seconds()) > 1:
            raise VerificationFailed(
                f"secret {params.namespace}/{cert['spec']['secretName']} holds a certificate valid until "
                f"{not_after:%Y-%m-%dT%H:%M:%SZ}, not the renewed one ({status.get('notAfter')})"
            )


__all__ = ["RenewCertificate", "issuing"]
