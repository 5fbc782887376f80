"""`SandboxCluster`: the emulator, its HTTP server and the controller, running in a background thread."""

from __future__ import annotations

import asyncio
import builtins
import copy
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import kmock

from kubernaut.sandbox.controller import Controller
from kubernaut.sandbox.kubeconfig import write_kubeconfig
from kubernaut.sandbox.resources import ResourceSpec, crd_keys, resolve, served_resources
from kubernaut.sandbox.seed import demo_manifests
from kubernaut.sandbox.selectors import labels_match, parse_label_selector
from kubernaut.sandbox.server import SandboxEmulator

T = TypeVar("T")


def spec_for_manifest(obj: dict[str, Any], crds: frozenset[str] = frozenset()) -> ResourceSpec:
    """The resource of a manifest, by its apiVersion group and kind (CRD kinds only when served)."""
    api_version = str(obj.get("apiVersion", "v1"))
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    for spec in served_resources(crds):
        if spec.kind == obj.get("kind") and spec.group == group:
            return spec
    raise KeyError(f"Unsupported manifest: apiVersion={api_version!r} kind={obj.get('kind')!r}")


class SandboxCluster:
    """
    A fake-but-faithful Kubernetes API on http://127.0.0.1:PORT for in-process tests and demos.

    All store access is marshalled into the server's event loop thread, so the synchronous
    methods here are safe to call from any thread.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        pod_ready_delay: float = 0.3,
        crash_interval: float = 1.0,
        tick: float = 0.1,
        crds: Iterable[str] = (),
    ) -> None:
        """``crds``: custom resources to serve as if their CRDs were installed, by storage key or
        API group (e.g. ``"snapshot.storage.k8s.io"``); see ``resources.CRD_RESOURCES``."""
        self.host = host
        self.port = port
        self.emulator = SandboxEmulator(crds=crd_keys(crds))
        self.controller = Controller(
            self.emulator.store,
            self.emulator.logs,
            self.emulator.faults,
            pod_ready_delay=pod_ready_delay,
            crash_interval=crash_interval,
            tick=tick,
        )
        self.emulator.scale_of = self.controller.scale_of
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._url: str | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("The sandbox cluster is already started.")
        self._thread = threading.Thread(target=self._run, name="sandbox-cluster", daemon=True)
        self._thread.start()
        self._started.wait(timeout=30)
        if self._error is not None:
            raise RuntimeError("The sandbox cluster failed to start.") from self._error
        if self._url is None:
            raise RuntimeError("The sandbox cluster did not start in time.")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=30)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced to start() instead of dying silently in the thread
            self._error = exc
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._bootstrap()
        port = self.port or None  # kmock/aiohttp pick a free port when None
        async with self.emulator, kmock.Server(self.emulator, host=self.host, port=port) as server:
            self._url = f"http://{self.host}:{server.port}"
            controller = asyncio.create_task(self.controller.run())
            self._started.set()
            try:
                await self._stop.wait()
            finally:
                self.emulator.stopping = True  # lets open watch streams finish before the server closes
                controller.cancel()
                await asyncio.gather(controller, return_exceptions=True)
                deadline = time.monotonic() + 1.0
                while self.emulator.store.watcher_count and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)

    def _bootstrap(self) -> None:
        # A real cluster always has these; clients default to "default".
        namespaces = resolve("namespaces")
        if self.emulator.store.get(namespaces, None, "default") is None:
            self.emulator.store.create(namespaces, {"metadata": {"name": "default"}})

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("The sandbox cluster is not started.")
        return self._url

    # --- thread marshalling ---------------------------------------------------------------------

    def call(self, fn: Callable[[], T]) -> T:
        """Run a synchronous function in the server loop (where the store lives) and return its result."""
        if self._loop is None:
            raise RuntimeError("The sandbox cluster is not started.")

        async def invoke() -> T:
            return fn()

        return self._await(invoke())

    def _await(self, coro: Awaitable[T]) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)  # type: ignore[arg-type]

    # --- public helpers -------------------------------------------------------------------------

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        return write_kubeconfig(path, self.url, namespace)

    def seed_demo(self) -> None:
        for manifest in demo_manifests():
            self.apply(manifest)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object from a manifest (status kept if given; namespace auto-created)."""
        spec = spec_for_manifest(obj, self.emulator.crds)
        store = self.emulator.store

        def apply_in_loop() -> dict[str, Any]:
            meta = obj.get("metadata") or {}
            namespace = meta.get("namespace") or ("default" if spec.namespaced else None)
            namespaces = resolve("namespaces")
            if namespace and store.get(namespaces, None, namespace) is None:
                store.create(namespaces, {"metadata": {"name": namespace}})
            if store.get(spec, namespace, meta.get("name", "")) is None:
                return store.create(spec, obj, namespace, keep_status=True)
            update = copy.deepcopy(obj)
            update["metadata"].pop("resourceVersion", None)
            return store.update(
                spec, namespace, meta["name"], update, check_version=False, keep_status="status" in obj
            )

        return self.call(apply_in_loop)

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        spec = resolve(kind)
        return self.call(lambda: copy.deepcopy(self.emulator.store.get(spec, namespace, name)))

    def list(
        self, kind: str, namespace: str | None = None, labels: str | dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        spec = resolve(kind)
        selector = ",".join(f"{k}={v}" for k, v in labels.items()) if isinstance(labels, dict) else labels
        requirements = parse_label_selector(selector)
        return self.call(
            lambda: [
                copy.deepcopy(obj)
                for obj in self.emulator.store.list(spec, namespace)
                if labels_match(requirements, obj["metadata"].get("labels"))
            ]
        )

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        """Delete at once, like `kubectl delete --force --grace-period=0` (a pod deleted through
        the API terminates gracefully instead)."""
        spec = resolve(kind)
        self.call(lambda: self.emulator.store.delete(spec, namespace, name, grace_period_seconds=0))

    def inject_fault(
        self,
        type_: str,
        namespace: str = "default",
        deployment: str | None = None,
        *,
        statefulset: str | None = None,
        daemonset: str | None = None,
        memory: str | None = None,
        container: str | None = None,
        image: str | None = None,
    ) -> dict[str, Any]:
        """Inject a fault (`crashloop`, `oom`, `unready`, `image-pull`) into a workload's pods;
        see `faults.py` (`memory`, `container`: what the oom fault's container needs, and which
        one; `image`: what the image-pull fault rolls out)."""
        kind, name = next(
            (
                (k, n)
                for k, n in (
                    ("deployment", deployment),
                    ("statefulset", statefulset),
                    ("daemonset", daemonset),
                )
                if n
            ),
            ("", ""),
        )
        if not name:
            raise ValueError("A deployment, statefulset or daemonset name is required.")
        return self.call(
            lambda: self.emulator.inject_fault(
                type_, namespace, name, kind, memory=memory, container=container, image=image
            )
        )

    def faults(self) -> builtins.list[dict[str, Any]]:
        return self.call(lambda: [fault.to_dict() for fault in self.emulator.faults.faults])

    def clear_faults(self) -> None:
        self.call(self.emulator.faults.clear)

    def logs(self, namespace: str, pod: str, container: str, previous: bool = False) -> str:
        return self.call(lambda: self.emulator.logs.read(namespace, pod, container, previous=previous))

    @staticmethod
    def wait_until(predicate: Callable[[], T], timeout: float = 10, interval: float = 0.05) -> T:
        """Poll until the predicate returns something truthy (and return it), or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Condition not met within {timeout}s: {predicate!r}")
            time.sleep(interval)
