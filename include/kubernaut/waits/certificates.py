"""cert-manager: a Certificate reissued (``certificate_issued``)."""

from __future__ import annotations

from typing import Any

from kubernaut.waits.clients import WaitClients
from kubernaut.waits.kube import read_custom
from kubernaut.waits.spec import Done, Failed, Pending, PollResult


async def poll_issued(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> PollResult:
    """args: ``namespace``, ``name``, ``revision`` (before the renewal): done when
    ``status.revision`` is past it and the Certificate is ``Ready``; a ``Ready=False`` whose
    reason says the issuer cannot issue ends the wait (the message says why)."""
    namespace, name = args["namespace"], args["name"]
    cert = await read_custom(
        clients, "cert-manager.io", "v1", namespace, "certificates", name, f"certificate {namespace}/{name}"
    )
    if cert is None:
        return Failed(f"certificate {namespace}/{name} was deleted", {"exists": False})
    status = cert.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = conditions.get("Ready") or {}
    detail = {
        "revision": status.get("revision"),
        "notAfter": status.get("notAfter"),
        "ready": ready.get("status"),
        "reason": ready.get("reason"),
    }
    if int(status.get("revision") or 0) > int(args.get("revision") or 0) and ready.get("status") == "True":
        return Done(detail)
    if ready.get("status") == "False" and ready.get("reason") in ("IssuerNotFound", "Failed", "Denied"):
        return Failed(f"certificate {namespace}/{name} not issued: {ready.get('message')}", detail)
    return Pending(detail)
