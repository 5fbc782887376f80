"""Typed API clients over an ApiClient, patch content types and the dry-run option.

The helpers take what they need, not a step's context: an ``ApiClient`` (or anything holding
one as ``api_client``, such as an action's context) and a dry-run flag (a bool, or anything with
``dry_run``), so a trigger or a CLI can call them as well as an action."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeAlias

from kubernetes import client

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class HasApiClient(Protocol):
    @property
    def api_client(self) -> ApiClient: ...


class HasDryRun(Protocol):
    @property
    def dry_run(self) -> bool: ...


class KubeAccess(HasApiClient, HasDryRun, Protocol):
    """An API client and whether writes are dry runs (an action's context is one)."""


ApiSource: TypeAlias = "ApiClient | HasApiClient"


def api_client_of(source: ApiSource) -> ApiClient:
    """The ApiClient itself, or the one ``source`` holds."""
    return source if isinstance(source, client.ApiClient) else source.api_client


def dry(dry_run: bool | HasDryRun) -> dict[str, str]:
    """``dryRun=All``: the API validates and admits the request but persists nothing."""
    flag = dry_run if isinstance(dry_run, bool) else dry_run.dry_run
    return {"dry_run": "All"} if flag else {}


def core(source: ApiSource) -> client.CoreV1Api:
    return client.CoreV1Api(api_client_of(source))


def apps(source: ApiSource) -> client.AppsV1Api:
    return client.AppsV1Api(api_client_of(source))


def autoscaling(source: ApiSource) -> client.AutoscalingV2Api:
    return client.AutoscalingV2Api(api_client_of(source))


def networking(source: ApiSource) -> client.NetworkingV1Api:
    return client.NetworkingV1Api(api_client_of(source))


def storage(source: ApiSource) -> client.StorageV1Api:
    return client.StorageV1Api(api_client_of(source))


def custom(source: ApiSource) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client_of(source))
