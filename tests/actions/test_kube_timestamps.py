"""The clients actions use read Kubernetes timestamps with the standard library
(kubernaut.kube.timestamps): the same instants as the client's own parser, without dateutil."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from kubernetes import client

from kubernaut.actions.base import ActionContext
from kubernaut.actions.registry import registry
from kubernaut.kube.timestamps import fast_timestamps
from kubernaut.sandbox import SandboxCluster

RFC3339 = [
    "2026-12-02T14:42:32Z",
    "2026-12-02T14:42:32.1Z",
    "2026-12-02T14:42:32.123456Z",
    "2026-12-02T14:42:32.123456789Z",  # MicroTime from a Go server may carry nanoseconds
    "2026-12-02T14:42:32+02:00",
    "2026-12-02T14:42:32",
]


class _Response:
    """What ApiClient.deserialize reads: the body of an HTTP answer."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.data = json.dumps(body)


def _pod(timestamp: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "p",
            "namespace": "demo",
            "creationTimestamp": timestamp,
            "managedFields": [{"manager": "m", "operation": "Update", "time": timestamp}],
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": timestamp}],
            "startTime": timestamp,
        },
    }


def _no_dateutil(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("dateutil parsed an RFC 3339 timestamp")


@pytest.mark.parametrize("timestamp", RFC3339)
def test_same_instants_as_the_clients_own_parser(timestamp: str) -> None:
    body = _Response(_pod(timestamp))
    plain = client.ApiClient().deserialize(body, "V1Pod")
    fast = fast_timestamps(client.ApiClient()).deserialize(body, "V1Pod")
    assert fast.metadata.creation_timestamp == plain.metadata.creation_timestamp
    assert fast.metadata.managed_fields[0].time == plain.metadata.managed_fields[0].time
    assert fast.status.conditions[0].last_transition_time == plain.status.conditions[0].last_transition_time
    assert fast.status.start_time == plain.status.start_time
    assert isinstance(fast.status.start_time, datetime.datetime)
    # Serialized back (an undo record, a patch) to the same text as before.
    serialize = client.ApiClient().sanitize_for_serialization
    assert serialize(fast) == serialize(plain)


def test_what_isoformat_cannot_read_goes_to_the_clients_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    api = fast_timestamps(client.ApiClient())
    pod = api.deserialize(_Response(_pod("Wed, 02 Dec 2026 14:42:32 GMT")), "V1Pod")
    assert pod.metadata.creation_timestamp == datetime.datetime(2026, 12, 2, 14, 42, 32, tzinfo=datetime.UTC)
    monkeypatch.setattr("kubernetes.client.api_client.parse", _no_dateutil)
    with pytest.raises(AssertionError, match="dateutil"):
        api.deserialize(_Response(_pod("Wed, 02 Dec 2026 14:42:32 GMT")), "V1Pod")


def test_applied_once_and_to_that_client_only() -> None:
    api = client.ApiClient()
    fast_timestamps(api)
    first = api._ApiClient__deserialize_datetime
    assert fast_timestamps(api) is api
    assert api._ApiClient__deserialize_datetime is first
    other = client.ApiClient()
    assert "_ApiClient__deserialize_datetime" not in vars(other)


def test_a_read_step_through_the_hook_never_calls_dateutil(
    cluster: SandboxCluster, ctx: ActionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client an action gets (KubernetesHook, as in a task) reads the deployment and its
    pods, every timestamp of them, without dateutil."""
    cluster.wait_until(lambda: len(cluster.list("Pod", "demo", "app=web")) == 3)
    monkeypatch.setattr("kubernetes.client.api_client.parse", _no_dateutil)
    action = registry.get("kubernetes", "get_deployment_status")
    params = action.Params.model_validate({"namespace": "demo", "deployment": "web"})
    result = action().start(ctx, params)
    assert result.output["desired"] == 3
    dep = client.AppsV1Api(ctx.api_client).read_namespaced_deployment("web", "demo")
    assert isinstance(dep.metadata.creation_timestamp, datetime.datetime)
    assert dep.metadata.creation_timestamp.tzinfo is not None


def test_the_waits_asyncio_client_never_calls_dateutil(
    cluster: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The waits (in a step or in the triggerer, every poll) read pods through the asyncio
    client the AsyncKubernetesHook builds: its timestamps are read the same way."""
    import asyncio

    from kubernetes_asyncio import client as async_client

    from kubernaut.waits.clients import WaitClients

    cluster.wait_until(lambda: len(cluster.list("Pod", "demo", "app=web")) == 3)
    monkeypatch.setattr("kubernetes_asyncio.client.api_client.parse", _no_dateutil)

    async def pods() -> Any:
        clients = WaitClients.in_process("kubernetes_default")
        try:
            core = async_client.CoreV1Api(await clients.kube())
            return await core.list_namespaced_pod("demo", label_selector="app=web")
        finally:
            await clients.close()

    found = asyncio.run(pods())
    assert len(found.items) == 3
    assert all(isinstance(p.metadata.creation_timestamp, datetime.datetime) for p in found.items)
