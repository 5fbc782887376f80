from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubernaut.sandbox import SandboxCluster
from tests.conftest import connected_sandbox


@pytest.fixture(autouse=True)
def no_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests look at the poll loop itself; the settle before a trigger's first poll
    (kubernaut.triggers.SETTLE_SECONDS) has its own test in test_driver.py."""
    monkeypatch.setattr("kubernaut.triggers.wait.SETTLE_SECONDS", 0.0)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxCluster]:
    """New pods take 1 s to become Ready: a rollout of the demo deployments lasts a few seconds."""
    with connected_sandbox(tmp_path, monkeypatch, pod_ready_delay=1.0) as sandbox:
        yield sandbox


def as_stored(trigger: Any) -> Any:
    """The trigger as the triggerer builds it from the database: its serialised kwargs through
    Airflow's serde (what the task runner stores), the class imported from its classpath."""
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.serde import deserialize, serialize

    classpath, kwargs = trigger.serialize()
    return import_string(classpath)(**deserialize(serialize(kwargs)))


def fire(trigger: Any) -> dict[str, Any]:
    """Run the trigger as the triggerer does and return its (first and only) event's payload."""

    async def first() -> Any:
        return await anext(trigger.run())

    payload: dict[str, Any] = asyncio.run(first()).payload
    return payload
