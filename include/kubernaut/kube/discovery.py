"""API discovery: whether the cluster serves a resource (e.g. a CRD that may not be installed)."""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubernaut.kube.errors import api_errors


def resource_served(api_client: client.ApiClient, group: str, version: str, plural: str) -> bool:
    """True when ``group/version`` is served and lists ``plural``; a 404 means not installed."""
    try:
        resources = client.CustomObjectsApi(api_client).get_api_resources(group, version)
    except ApiException as exc:
        if exc.status == 404:
            return False
        with api_errors(f"API discovery of {group}/{version}"):
            raise
    return any(r.name == plural for r in (resources.resources or []))
