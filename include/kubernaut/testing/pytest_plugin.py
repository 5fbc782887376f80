"""Pytest fixtures for testing actions. Enable in your ``conftest.py``::

pytest_plugins = ["kubernaut.testing.pytest_plugin"]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubernaut.actions.base import ActionContext
from kubernaut.config import KubernautConfig
from kubernaut.testing.kit import UndoJournal, make_context
from kubernaut.testing.sandbox import KubeSandbox, kube_sandbox
from kubernaut.testing.services import connection_env_name
from kubernaut.testing.webhook import RecordingServer, recording_server


@pytest.fixture
def undo_journal() -> UndoJournal:
    return UndoJournal()


@pytest.fixture
def action_context(undo_journal: UndoJournal) -> Callable[..., ActionContext]:
    """Factory: ``action_context(dry_run=True, config=...)``; saved undo records go to ``undo_journal``."""

    def make(**kwargs: Any) -> ActionContext:
        kwargs.setdefault("journal", undo_journal)
        return make_context(**kwargs)

    return make


@pytest.fixture
def airflow_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Define an Airflow connection for this test only: ``airflow_connection("hook", url, token=...)``
    (extra keywords go to the connection's ``extra``). Returns the connection id."""

    def define(conn_id: str, url: str, **extra: Any) -> str:
        scheme, _, rest = url.partition("://")
        value = {"conn_type": "http", "host": url, "extra": extra} if extra else None
        monkeypatch.setenv(connection_env_name(conn_id), json.dumps(value) if value else f"{scheme}://{rest}")
        return conn_id

    return define


@pytest.fixture
def webhook_server() -> Iterator[RecordingServer]:
    """A local HTTP server recording requests; script replies with ``reply_with(Reply(...))``."""
    with recording_server() as server:
        yield server


@pytest.fixture
def kubernaut_config() -> Callable[..., KubernautConfig]:
    """Factory: ``kubernaut_config(scripts={"x": ["/bin/true"]})`` -> a validated config."""
    return lambda **fields: KubernautConfig.model_validate(fields)


@pytest.fixture
def kubernaut_sandbox_options() -> dict[str, Any]:
    """Options of the ``kubernaut_sandbox`` cluster (``SandboxCluster`` keywords); override
    this fixture to change them, e.g. ``{"crds": ["snapshot.storage.k8s.io"]}``."""
    return {"pod_ready_delay": 0.1}


@pytest.fixture
def kubernaut_sandbox(tmp_path: Path, kubernaut_sandbox_options: dict[str, Any]) -> Iterator[KubeSandbox]:
    """A seeded sandbox Kubernetes API over HTTP for this test, behind the ``kubernetes_default``
    Airflow connection: ``run_action(MyAction, params)`` reaches it; ``kubernaut_sandbox.context(...)``
    builds an ActionContext for it and ``kubernaut_sandbox.cluster`` inspects and changes its objects."""
    with kube_sandbox(tmp_path, **kubernaut_sandbox_options) as sandbox:
        yield sandbox
