"""The clients a wait polls with: the Kubernetes API through the cncf-kubernetes provider's
``AsyncKubernetesHook`` (kubernetes_asyncio) and HTTP services (Prometheus, Alertmanager)
through ``AsyncServiceClient``, both from the same Airflow connections the steps use.

The same class serves the triggerer (connections read with ``BaseHook.aget_connection``) and
a step that waits in its own process (connections read the synchronous way, in a thread).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubernaut.errors import KubernautError
from kubernaut.kube.errors import KubeError

if TYPE_CHECKING:
    from kubernaut.services.connection import Endpoint
    from kubernaut.services.http import AsyncServiceClient

HTTP_TIMEOUT = 30.0  # one request; the wait's deadline caps it further


class RetryableWaitError(KubernautError):
    """A poll could not look (API server or service unreachable, 5xx, 429, a poll that hung):
    the wait polls again until its deadline instead of failing the step at once. ``status``:
    the HTTP status, if there was one (401: the wait builds its Kubernetes client again)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


EndpointResolver = Callable[[str], Awaitable["Endpoint"]]


async def _endpoint_in_process(conn_id: str) -> Endpoint:
    from kubernaut.services.connection import endpoint_from_connection

    # The synchronous lookup (Task SDK or environment) in a thread: no event loop of its own there.
    return await asyncio.to_thread(endpoint_from_connection, conn_id)


async def _endpoint_in_triggerer(conn_id: str) -> Endpoint:
    from kubernaut.services.connection import aendpoint_from_connection

    return await aendpoint_from_connection(conn_id)


@dataclass(eq=False)
class _KubeClient:
    client: Any
    stack: AsyncExitStack
    users: int = 0


@dataclass
class _Shared:
    """The Kubernetes clients of the waits running in one event loop (the triggerer runs every
    trigger in one), by connection: each client builds its own TLS context with the CA bundle
    (about 0.8 MiB), so a hundred waits share one instead of holding a hundred."""

    clients: dict[str, _KubeClient] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)


_SHARED: dict[int, _Shared] = {}  # by id() of the running event loop


async def _open_kube(conn_id: str) -> _KubeClient:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook

    from kubernaut.kube.timestamps import fast_timestamps

    stack = AsyncExitStack()
    try:
        client = fast_timestamps(
            await stack.enter_async_context(AsyncKubernetesHook(conn_id=conn_id).get_conn())
        )
    except Exception as exc:
        await stack.aclose()
        raise KubeError(f"Kubernetes connection {conn_id!r}: cannot build a client: {exc}") from exc
    return _KubeClient(client, stack)


class WaitClients:
    """Opened lazily, closed by ``close``; ``share_kube``: the Kubernetes client is shared with
    the other waits of this event loop on the same connection (refcounted)."""

    def __init__(
        self, kube_conn_id: str, resolve_endpoint: EndpointResolver, *, share_kube: bool = False
    ) -> None:
        self.kube_conn_id = kube_conn_id
        self._resolve_endpoint = resolve_endpoint
        self._share_kube = share_kube
        self._stack = AsyncExitStack()
        self._kube: _KubeClient | None = None
        # Reads of one wait may ask for the client at once (the assessment's evidence): it is
        # held once, so that ``close`` lets it go.
        self._kube_lock = asyncio.Lock()
        self._http: dict[str, AsyncServiceClient] = {}

    @classmethod
    def in_triggerer(cls, kube_conn_id: str) -> WaitClients:
        return cls(kube_conn_id, _endpoint_in_triggerer, share_kube=True)

    @classmethod
    def in_process(cls, kube_conn_id: str) -> WaitClients:
        return cls(kube_conn_id, _endpoint_in_process)

    async def kube(self) -> Any:
        """A kubernetes_asyncio ApiClient for the step's Kubernetes connection."""
        async with self._kube_lock:
            if self._kube is None:
                if not self._share_kube:
                    self._kube = await _open_kube(self.kube_conn_id)
                else:
                    shared = _SHARED.setdefault(id(asyncio.get_running_loop()), _Shared())
                    async with shared.locks.setdefault(self.kube_conn_id, asyncio.Lock()):
                        current = shared.clients.get(self.kube_conn_id)
                        if current is None:
                            current = shared.clients[self.kube_conn_id] = await _open_kube(self.kube_conn_id)
                        self._kube = current
                self._kube.users += 1
            return self._kube.client

    async def reset_kube(self) -> None:
        """Let go of the client and have the next ``kube()`` build a new one (after a 401:
        short-lived exec credentials are read again); the waits sharing it move on at theirs."""
        if self._kube is not None and self._share_kube:
            shared = _SHARED.get(id(asyncio.get_running_loop()))
            if shared is not None and shared.clients.get(self.kube_conn_id) is self._kube:
                del shared.clients[self.kube_conn_id]
        await self._release_kube()

    async def _release_kube(self) -> None:
        """Drop this wait's hold on its client; the last user closes it."""
        held, self._kube = self._kube, None
        if held is None:
            return
        held.users -= 1
        if held.users > 0:
            return
        if self._share_kube:
            loop = id(asyncio.get_running_loop())
            shared = _SHARED.get(loop)
            if shared is not None and shared.clients.get(self.kube_conn_id) is held:
                del shared.clients[self.kube_conn_id]
            if shared is not None and not shared.clients:
                _SHARED.pop(loop, None)
        await held.stack.aclose()

    async def http(self, conn_id: str) -> AsyncServiceClient:
        """An HTTP client for the Airflow connection ``conn_id`` (type http)."""
        if conn_id not in self._http:
            from kubernaut.services.http import AsyncServiceClient

            endpoint = await self._resolve_endpoint(conn_id)
            client = AsyncServiceClient(endpoint, timeout=HTTP_TIMEOUT)
            self._stack.push_async_callback(client.aclose)
            self._http[conn_id] = client
        return self._http[conn_id]

    async def close(self) -> None:
        await self._release_kube()
        await self._stack.aclose()
        self._http.clear()
