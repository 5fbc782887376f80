from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubernaut.actions.base import ActionContext
from kubernaut.local_stack import kubernetes_connection
from kubernaut.sandbox import SandboxCluster


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxCluster]:
    """The sandbox over HTTP, reached the production way: KubernetesHook + connection env var."""
    with SandboxCluster(pod_ready_delay=0.1) as sandbox:
        kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv(
            "AIRFLOW_CONN_KUBERNETES_DEFAULT",
            kubernetes_connection(kubeconfig),
        )
        sandbox.seed_demo()
        yield sandbox


@pytest.fixture
def ctx(cluster: SandboxCluster) -> ActionContext:
    return ActionContext(timeout=20, poll_interval=0.1, logger=logging.getLogger("test"))


@pytest.fixture
def dry_ctx(cluster: SandboxCluster) -> ActionContext:
    return ActionContext(dry_run=True, timeout=20, poll_interval=0.1, logger=logging.getLogger("test"))
