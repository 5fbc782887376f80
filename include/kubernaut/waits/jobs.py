"""Jobs: until a Job has finished (``job_finished``): Complete is done, Failed stops the wait."""

from __future__ import annotations

from typing import Any

from kubernaut.waits.clients import WaitClients
from kubernaut.waits.kube import api_errors
from kubernaut.waits.spec import Done, Failed, Pending, PollResult


async def poll_finished(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> PollResult:
    """args: ``namespace``, ``job``: done when its ``Complete`` condition is True; a ``Failed``
    condition ends the wait at once, with its reason and message."""
    from kubernetes_asyncio import client

    namespace, name = args["namespace"], args["job"]
    api = client.BatchV1Api(await clients.kube())
    with api_errors(f"job {namespace}/{name}"):
        job = await api.read_namespaced_job(name, namespace)
    status = job.status
    conditions = {c.type: c for c in (status.conditions if status else None) or [] if c.status == "True"}
    detail = {
        "active": (status.active if status else None) or 0,
        "succeeded": (status.succeeded if status else None) or 0,
        "failed": (status.failed if status else None) or 0,
        "conditions": sorted(conditions),
    }
    if "Complete" in conditions:
        return Done(detail)
    if "Failed" in conditions:
        failed = conditions["Failed"]
        return Failed(f"job {namespace}/{name} failed: {failed.reason}: {failed.message}", detail)
    return Pending(detail)
