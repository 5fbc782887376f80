"""A migrated history database of its own, seeded through ``History`` the way tasks and the
intake write it, and the UI app over it. Airflow's login and permissions are exercised on the
live stack (test_live_ui.py); here a stand-in ``Access`` names the user from a header."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
import pytest
from fastapi import HTTPException, Request
from fastapi.testclient import TestClient

from kubernaut.history import History
from kubernaut.secrets import REDACTED, SEALED
from kubernaut.ui.app import Viewer, create_app
from kubernaut.ui.queries import UiQueries
from tests.conftest import PG_DATABASE, admin_sql

UI_DATABASE = f"{PG_DATABASE}_ui_{secrets.token_hex(2)}"
CIPHERTEXT = "gAAAAABpZ-this-is-the-sealed-ciphertext-of-the-secret"
SECRET_VALUE = "hunter2-db-password"
BULK_RUNS = 130  # more than two pages of 50


def connect() -> Any:
    return psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=UI_DATABASE)


@dataclass
class FakeAccess:
    """Users by the ``X-User`` header: ``name:role``; role ``viewer`` reads, ``user`` also edits."""

    hidden_dags: frozenset[str] = frozenset()

    async def viewer(self, request: Request) -> Viewer:
        header = request.headers.get("x-user", "")
        if not header:
            raise HTTPException(401, "Not authenticated")
        name, _, role = header.partition(":")
        return Viewer(name=name, user=role)

    def require_read(self, request: Request, viewer: Viewer) -> None:
        if viewer.user not in ("viewer", "user", "admin"):
            raise HTTPException(403, "Forbidden")

    def can_read_dag(self, viewer: Viewer, dag_id: str) -> bool:
        return dag_id not in self.hidden_dags

    def can_edit(self, viewer: Viewer) -> bool:
        return viewer.user in ("user", "admin")

    def readable_dags(self, viewer: Viewer) -> set[str] | None:
        return None if not self.hidden_dags else {"kubernaut_pod_crash_recovery", "kubernaut_rollout_restart"}

    def csrf_secret(self) -> bytes:
        return b"test-secret"


@dataclass
class Seeded:
    success: int
    rolled_back: int
    bulk_ids: list[int]


def _age(history: History, run_id: int, minutes: float, duration_s: float) -> None:
    history._query(
        """UPDATE kubernaut_runs SET started_at = now() - make_interval(mins => %s),
                  finished_at = now() - make_interval(mins => %s) + make_interval(secs => %s)
            WHERE id = %s""",
        (minutes, minutes, duration_s, run_id),
    )


def seed(history: History) -> Seeded:
    """Two realistic runs (green; rolled back with a secret), decisions, a block, and a bulk of
    older runs for paging."""
    alert = {
        "name": "KubeDeploymentReplicasMismatch",
        "fingerprint": "fp-success",
        "kind": "Deployment",
        "namespace": "demo",
        "resource": "web",
    }
    ok = history.ensure_run(
        "kubernaut_deployment_replica_mismatch",
        "alert__fp-success__1",
        "deployment-replica-mismatch",
        alert,
        False,
    )
    history.step_started(ok, "assess", "get_deployment_status", {"namespace": "demo", "deployment": "web"})
    history.step_finished(ok, "assess", "success", {"ready": 0, "desired": 2})
    history.finish_run(ok, "success", "all steps succeeded")
    _age(history, ok, 2, 75)

    crash = {
        "name": "KubePodCrashLooping",
        "fingerprint": "fp-rolled",
        "kind": "Pod",
        "namespace": "shop",
        "resource": "cart-0",
    }
    rb = history.ensure_run(
        "kubernaut_pod_crash_recovery", "alert__fp-rolled__1", "pod-crash-recovery", crash, False
    )
    history.step_started(
        rb,
        "patch-secret",
        "patch_secret",
        {"namespace": "shop", "name": "db", "data": {"password": REDACTED}},
    )
    history.save_undo(
        rb, "patch-secret", "patch_secret", {"namespace": "shop", "name": "db"}, {SEALED: CIPHERTEXT}
    )
    history.step_finished(rb, "patch-secret", "success", {"changed": True})
    history.step_started(rb, "restart-pod", "restart_pod", {"namespace": "shop", "pod": "cart-0"})
    history.save_undo(
        rb, "restart-pod", "restart_pod", {"namespace": "shop", "pod": "cart-0"}, {"uid": "u-1"}
    )
    history.step_finished(rb, "restart-pod", "success", {"restarted": True})
    history.step_started(rb, "validate", "validate_pod_health", {"namespace": "shop", "pod": "cart-0"})
    history.step_finished(rb, "validate", "failed", None, error="pod cart-0 not Ready within 2m")
    journal = history.journal(rb)  # rollback order: the latest change first
    assert [e.step for e in journal] == ["restart-pod", "patch-secret"]
    for entry in journal:
        history.mark_undo(entry.id, "applied", {"undone": entry.step})
    history.finish_run(rb, "rolled_back", "validate failed: pod cart-0 not Ready within 2m")
    _age(history, rb, 1, 130)

    for fp, name, decision, reason, dag_run in (
        (
            "fp-success",
            "KubeDeploymentReplicasMismatch",
            "triggered",
            "launched run alert__fp-success__1",
            "alert__fp-success__1",
        ),
        (
            "fp-rolled",
            "KubePodCrashLooping",
            "triggered",
            "launched run alert__fp-rolled__1",
            "alert__fp-rolled__1",
        ),
        (
            "fp-dup",
            "KubePodCrashLooping",
            "duplicate",
            "run alert__fp-rolled__1 already launched",
            "alert__fp-rolled__1",
        ),
        (
            "fp-block",
            "KubePodCrashLooping",
            "blocked",
            "3 consecutive failed remediations of KubePodCrashLooping on Pod/shop/api-0",
            "",
        ),
        ("fp-none", "DiskAlmostFull", "no_template", "no template answers alert 'DiskAlmostFull'", ""),
    ):
        pod = "api-0" if fp == "fp-block" else ("web" if fp == "fp-success" else "cart-0")
        history.record_decision(
            fingerprint=fp,
            alert_name=name,
            alert_status="firing",
            decision=decision,
            reason=reason,
            template="pod-crash-recovery"
            if "Pod" in name
            else ("deployment-replica-mismatch" if "Deploy" in name else ""),
            dag_id=(
                "kubernaut_pod_crash_recovery" if "Pod" in name else "kubernaut_deployment_replica_mismatch"
            )
            if dag_run
            else "",
            dag_run_id=dag_run,
            target={
                "kind": "Deployment" if fp == "fp-success" else "Pod",
                "namespace": "demo" if fp == "fp-success" else "shop",
                "name": pod,
            },
            labels={"alertname": name, "severity": "warning"},
        )

    history._query(  # the assessment of the green run (history migration 7's table)
        """INSERT INTO kubernaut_assessments (run_id, verdict, score, outcome, reasons, components)
           VALUES (%s, 'effective', 0.92, 'success', '["alert resolved"]',
                   '{"alert_gone": {"name": "alert_gone", "score": 1.0, "weight": 0.35,
                                    "reason": "the alert no longer fires",
                                    "evidence": {"alertmanager_active": 0}}}')""",
        (ok,),
    )
    bulk = history._query(
        """
        INSERT INTO kubernaut_runs (dag_id, dag_run_id, template, alert_name, target_kind, target_namespace,
                                    target_name, status, started_at, finished_at)
        SELECT 'kubernaut_rollout_restart', 'bulk-' || i, 'rollout-restart', 'KubeDeploymentRolloutStuck',
               'Deployment', CASE WHEN i %% 2 = 0 THEN 'even' ELSE 'odd' END, 'app-' || i,
               CASE WHEN i %% 10 = 0 THEN 'rollback_failed' ELSE 'success' END,
               now() - make_interval(hours => i), now() - make_interval(hours => i) + interval '40 seconds'
          FROM generate_series(1, %s) AS i
        RETURNING id
        """,
        (BULK_RUNS,),
    )
    return Seeded(ok, rb, [int(r["id"]) for r in bulk])


@pytest.fixture(scope="package")
def ui_db() -> Iterator[Seeded]:
    admin_sql(f'DROP DATABASE IF EXISTS "{UI_DATABASE}" WITH (FORCE)')
    admin_sql(f'CREATE DATABASE "{UI_DATABASE}"')
    history = History(connect=connect)
    try:
        history.migrate()
        yield seed(history)
    finally:
        history.close()
        admin_sql(f'DROP DATABASE IF EXISTS "{UI_DATABASE}" WITH (FORCE)')


@pytest.fixture
def access() -> FakeAccess:
    return FakeAccess()


@pytest.fixture
def client(ui_db: Seeded, access: FakeAccess) -> Iterator[TestClient]:
    app = create_app(UiQueries(connect=connect), access, metrics_token=lambda: "scrape-token")
    with TestClient(app, raise_server_exceptions=False, base_url="http://ui.test") as c:
        yield c


VIEWER = {"X-User": "vera:viewer"}
EDITOR = {"X-User": "ed:user"}


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port (in a thread); yields host:port."""
    import uvicorn

    from kubernaut.testing.services import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def hours_ago(h: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M")
