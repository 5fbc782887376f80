"""The intake served over HTTP the way the api-server serves it (uvicorn, the intake mounted at
/kubernaut), with the real history in PostgreSQL and a stand-in for the Airflow REST API that
records the runs it is asked to create. Shared by the block-rule and suppression tests."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from kubernaut.config import KubernautConfig
from kubernaut.history import History
from kubernaut.intake.airflow_client import AirflowGateway, AirflowSettings
from kubernaut.intake.app import create_app
from kubernaut.intake.history_checks import IntakeHistory
from kubernaut.intake.service import IntakeService
from kubernaut.intake.settings import IntakeSettings, TokenSource
from kubernaut.intake.suppression import AlertSource
from kubernaut.live_stack import create_database, drop_database
from kubernaut.local_stack import free_port

TOKEN = "blocking-test-token"


@dataclass
class StandInAirflow:
    """The Airflow REST API as the intake uses it; records every run it creates."""

    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def routes(self, app: FastAPI) -> None:
        app.post("/auth/token", status_code=201)(self.token)
        app.get("/api/v2/dags/{dag_id}")(self.dag)
        app.get("/api/v2/dags/{dag_id}/dagRuns/{run_id}")(self.get_run)
        app.post("/api/v2/dags/{dag_id}/dagRuns")(self.post_run)

    def token(self) -> dict[str, str]:
        claims = base64.urlsafe_b64encode(json.dumps({"exp": time.time() + 3600}).encode()).decode()
        return {"access_token": f"e30.{claims.rstrip('=')}.sig"}

    def dag(self, dag_id: str) -> dict[str, Any]:
        return {"dag_id": dag_id, "is_paused": False}

    def get_run(self, dag_id: str, run_id: str) -> Any:
        if run_id not in self.runs:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return {"dag_run_id": run_id, "state": "queued"}

    def post_run(self, dag_id: str, body: dict[str, Any]) -> Any:
        with self.lock:
            if body["dag_run_id"] in self.runs:
                return JSONResponse({"detail": "exists"}, status_code=409)
            self.runs[body["dag_run_id"]] = {"dag_id": dag_id, **body}
        return {"dag_run_id": body["dag_run_id"], "dag_id": dag_id}

    def run_ids(self, dag_id: str | None = None) -> list[str]:
        return [r for r, body in self.runs.items() if dag_id is None or body["dag_id"] == dag_id]


@contextmanager
def history_database(prefix: str) -> Iterator[str]:
    name = f"{prefix}_{secrets.token_hex(4)}"
    uri = create_database(name)
    History(connect=lambda: psycopg2.connect(uri)).migrate()
    try:
        yield uri
    finally:
        drop_database(name)


@dataclass
class IntakeServer:
    url: str
    airflow: StandInAirflow
    history_uri: str
    service: IntakeService

    def post(self, *alerts: dict[str, Any]) -> dict[str, Any]:
        body = {
            "version": "4",
            "receiver": "kubernaut",
            "status": "firing",
            "alerts": list(alerts),
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager",
            "groupKey": "{}:{}",
            "truncatedAlerts": 0,
        }
        response = httpx.post(
            f"{self.url}/kubernaut/alerts",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def history(self) -> History:
        return History(connect=lambda: psycopg2.connect(self.history_uri))

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg2.connect(self.history_uri) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows = list(cur.fetchall())
        conn.close()
        return rows


@contextmanager
def intake_server(
    history_uri: str,
    templates_dir: Path,
    config: KubernautConfig,
    *,
    alertmanager: AlertSource | None = None,
) -> Iterator[IntakeServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    airflow = StandInAirflow()
    root = FastAPI()
    airflow.routes(root)
    settings = IntakeSettings(templates_dir=templates_dir, token=TokenSource(TOKEN))
    service = IntakeService(
        settings,
        history_factory=lambda: IntakeHistory(connect=lambda: psycopg2.connect(history_uri)),
        airflow=AirflowGateway(
            AirflowSettings(url=url, username="intake", password="pw", timeout=10, attempts=2)
        ),
        config=config,
        alertmanager=alertmanager,
    )
    root.mount("/kubernaut", create_app(service))
    server = uvicorn.Server(
        uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "intake server did not start"
        time.sleep(0.01)
    try:
        yield IntakeServer(url, airflow, history_uri, service)
    finally:
        server.should_exit = True
        thread.join(10)


def webhook_alert(
    alertname: str, labels: dict[str, str], *, starts_at: datetime | None = None, status: str = "firing"
) -> dict[str, Any]:
    """One alert as Alertmanager's webhook sends it (a fresh fingerprint per alert)."""
    starts = (starts_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "status": status,
        "labels": {"alertname": alertname, **labels},
        "annotations": {},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": secrets.token_hex(8),
    }
