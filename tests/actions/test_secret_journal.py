"""rotate_secret under the undo-journal contract of the test-kit (the production one): its
complete record, consumers included, is journaled once before the Secret changes; a retry
reuses it and restarts nothing twice; the undo restarts each consumer once."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kubernaut.actions.kubernetes.config import RotateSecret
from kubernaut.sandbox import SandboxCluster
from kubernaut.testing import (
    UndoJournal,
    assert_resumes_without_double_change,
    assert_undo_idempotent,
    run_action,
)

PARAMS = {
    "namespace": "demo",
    "secret": "db",
    "data": {"password": "n3w-pa55word"},
    "consumers": [{"kind": "Deployment", "name": "api"}, {"kind": "Deployment", "name": "web"}],
}
OLD = {"password": base64.b64encode(b"old-pa55word").decode()}


@pytest.fixture
def secret(cluster: SandboxCluster) -> SandboxCluster:
    cluster.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "demo"}, "data": OLD}
    )
    return cluster


def state(cluster: SandboxCluster) -> dict[str, Any]:
    """The Secret's data and each consumer's generation (bumped by every restart)."""
    found: dict[str, Any] = {"data": (cluster.get("secrets", "demo", "db") or {}).get("data")}
    for name in ("api", "web"):
        dep = cluster.get("deployments", "demo", name)
        assert dep is not None
        found[name] = dep["metadata"]["generation"]
    return found


def test_the_complete_record_is_journaled_once_before_the_secret_changes(
    secret: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes import client

    journal = UndoJournal(step="rotate")
    at_secret_write: list[dict[str, Any] | None] = []
    patch = client.CoreV1Api.patch_namespaced_secret

    def watched(self: Any, *args: Any, **kwargs: Any) -> Any:
        at_secret_write.append(journal.record)
        return patch(self, *args, **kwargs)

    monkeypatch.setattr(client.CoreV1Api, "patch_namespaced_secret", watched)
    result = run_action(RotateSecret, PARAMS, journal=journal, timeout=30)
    expected = {"Deployment/api": None, "Deployment/web": None}
    assert [r is not None and r["data"] == OLD and r["restarted"] == expected for r in at_secret_write] == [
        True
    ]
    assert all(r == journal.record for r in journal.records)
    assert result.undo == journal.record
    assert state(secret) == {
        "data": {"password": base64.b64encode(b"n3w-pa55word").decode()},
        "api": 2,
        "web": 2,
    }

    # A retried attempt gets the journaled record back and saves nothing different.
    again = run_action(RotateSecret, PARAMS, journal=journal, prior_undo=journal.record, timeout=30)
    assert again.undo == journal.record and state(secret)["api"] == state(secret)["web"] == 2

    first, second = assert_undo_idempotent(
        RotateSecret, PARAMS, journal.record, state=lambda: state(secret), timeout=30
    )
    assert first == {
        "restored": True,
        "restarted": {"Deployment/api": True, "Deployment/web": True},
    }
    assert second == {"restored": False, "restarted": {}}
    assert state(secret) == {"data": OLD, "api": 3, "web": 3}  # each consumer restarted once more


def test_rotate_secret_resumes_without_double_change(secret: SandboxCluster) -> None:
    first, second = assert_resumes_without_double_change(
        RotateSecret, PARAMS, state=lambda: state(secret), timeout=30
    )
    assert first.undo == second.undo
    assert state(secret)["api"] == state(secret)["web"] == 2
