"""Typed API clients over the context's ApiClient, patch content types and the dry-run option."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubernetes import client

if TYPE_CHECKING:
    from kubernaut.actions.base import ActionContext

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


def dry(ctx: ActionContext) -> dict[str, str]:
    """``dryRun=All``: the API validates and admits the request but persists nothing."""
    return {"dry_run": "All"} if ctx.dry_run else {}


def core(ctx: ActionContext) -> client.CoreV1Api:
    return client.CoreV1Api(ctx.api_client)


def apps(ctx: ActionContext) -> client.AppsV1Api:
    return client.AppsV1Api(ctx.api_client)


def autoscaling(ctx: ActionContext) -> client.AutoscalingV2Api:
    return client.AutoscalingV2Api(ctx.api_client)


def networking(ctx: ActionContext) -> client.NetworkingV1Api:
    return client.NetworkingV1Api(ctx.api_client)


def storage(ctx: ActionContext) -> client.StorageV1Api:
    return client.StorageV1Api(ctx.api_client)


def custom(ctx: ActionContext) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(ctx.api_client)
