"""Real Prometheus, Pushgateway and Alertmanager for the whole session (about 1 s to start).

Missing binaries fail the run: CI installs them (see kubernaut.testing.services.INSTALL_HINT).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubernaut.actions.base import ActionContext
from kubernaut.config import KubernautConfig
from kubernaut.testing import make_context
from kubernaut.testing.pytest_plugin import airflow_connection, undo_journal, webhook_server  # noqa: F401
from kubernaut.testing.services import MonitoringStack, ServiceStartError, monitoring_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[MonitoringStack]:
    try:
        with monitoring_stack() as running:
            yield running
    except ServiceStartError as exc:
        pytest.fail(f"cannot start the monitoring services: {exc}", pytrace=False)


@pytest.fixture
def services(stack: MonitoringStack, monkeypatch: pytest.MonkeyPatch) -> MonitoringStack:
    """The stack, reached the production way: Airflow connections from AIRFLOW_CONN_* variables."""
    for name, value in stack.connection_env().items():
        monkeypatch.setenv(name, value)
    return stack


@pytest.fixture
def ctx(services: MonitoringStack) -> Callable[..., ActionContext]:
    def make(**kwargs: Any) -> ActionContext:
        kwargs.setdefault("config", KubernautConfig())
        kwargs.setdefault("logger", logging.getLogger("test"))
        return make_context(**kwargs)

    return make


@pytest.fixture
def job() -> str:
    """A Pushgateway job name unique to the test, so tests never see each other's series."""
    return f"t{uuid.uuid4().hex[:10]}"
