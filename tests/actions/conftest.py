from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubernaut.actions.base import ActionContext
from kubernaut.config import KubernautConfig, PolicyConfig
from kubernaut.sandbox import SandboxCluster
from tests.conftest import connected_sandbox


@pytest.fixture
def crds() -> tuple[str, ...]:
    """CRD resources the sandbox serves (none); a test parametrizes it to install some."""
    return ()


@pytest.fixture
def cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crds: tuple[str, ...]
) -> Iterator[SandboxCluster]:
    with connected_sandbox(tmp_path, monkeypatch, pod_ready_delay=0.1, crds=crds) as sandbox:
        yield sandbox


@pytest.fixture
def ctx(cluster: SandboxCluster) -> ActionContext:
    return ActionContext(
        timeout=20, poll_interval=0.1, logger=logging.getLogger("test"), _config=KubernautConfig()
    )


@pytest.fixture
def dry_ctx(cluster: SandboxCluster) -> ActionContext:
    return ActionContext(
        dry_run=True,
        timeout=20,
        poll_interval=0.1,
        logger=logging.getLogger("test"),
        _config=KubernautConfig(),
    )


class ConflictOnce:
    """Between an action's read and its first write, another writer changes the object once
    (the ``bump`` callback): the write then fails with 409 and must be re-read and retried."""

    def __init__(self) -> None:
        self.bump: Callable[[], None] | None = None
        self.writes: list[tuple[str, str]] = []
        self.conflicts = 0

    def arm(self, bump: Callable[[], None]) -> None:
        self.bump, self.writes, self.conflicts = bump, [], 0

    def retried(self) -> bool:
        """The armed write hit its 409 and every write that conflicted was re-read and retried,
        with no write beyond those. A controller's own status write between the re-read and the
        retry is a real conflict too (it moves resourceVersion, as on a real API server), so on
        a loaded machine there may be more than one."""
        return self.conflicts >= 1 and len(self.writes) == self.conflicts + 1


@pytest.fixture
def conflict_once(monkeypatch: pytest.MonkeyPatch) -> ConflictOnce:
    from kubernetes.client import ApiClient
    from kubernetes.client.exceptions import ApiException

    state = ConflictOnce()
    original = ApiClient.call_api

    def call_api(self: ApiClient, resource_path: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if method in ("PATCH", "PUT"):
            state.writes.append((method, resource_path))
            if state.bump is not None:
                bump, state.bump = state.bump, None
                bump()
            try:
                return original(self, resource_path, method, *args, **kwargs)
            except ApiException as exc:
                state.conflicts += exc.status == 409
                raise
        return original(self, resource_path, method, *args, **kwargs)

    monkeypatch.setattr(ApiClient, "call_api", call_api)
    return state


def bump_annotation(
    cluster: SandboxCluster, kind: str, namespace: str | None, name: str
) -> Callable[[], None]:
    """A concurrent writer: sets an annotation, which changes the resourceVersion."""

    def bump() -> None:
        obj = cluster.get(kind, namespace, name)
        assert obj is not None
        obj["metadata"].setdefault("annotations", {})["test/concurrent-writer"] = "was-here"
        cluster.apply(obj)

    return bump


def policy_ctx(dry_run: bool = False, **policy: Any) -> ActionContext:
    """A context whose configuration carries the given policy settings."""
    config = KubernautConfig(policy=PolicyConfig(**policy))
    return ActionContext(
        dry_run=dry_run, timeout=20, poll_interval=0.1, logger=logging.getLogger("test"), _config=config
    )
