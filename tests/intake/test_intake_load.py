"""The intake under load, served the way the api-server serves it: one uvicorn server whose
``def`` endpoints share anyio's 40-thread pool, hosting both the intake (mounted at
/kubernaut) and the Airflow REST API it calls (a stand-in with sync endpoints, like
Airflow's), with the real history in PostgreSQL. No Airflow stack needed; the live-stack
version is test_storm.py."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg2
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from kubernaut.config import KubernautConfig
from kubernaut.history import History
from kubernaut.intake.airflow_client import AirflowGateway, AirflowSettings
from kubernaut.intake.app import create_app
from kubernaut.intake.decisions import dag_run_id
from kubernaut.intake.history_checks import IntakeHistory
from kubernaut.intake.payload import Alert
from kubernaut.intake.service import IntakeService
from kubernaut.intake.settings import IntakeSettings, TokenSource
from kubernaut.live_stack import create_database, drop_database, storm_alert, webhook_body
from kubernaut.local_stack import free_port
from tests.conftest import REPO

TOKEN = "load-test-token"
DAG = "kubernaut_pod_diagnostics"
TIMEOUT = 3.0  # the intake's Airflow timeout: short, so a starved call fails fast


@dataclass
class StandInAirflow:
    """Airflow's REST API as the intake uses it; ``def`` endpoints run on the server's thread pool."""

    history_uri: str
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    seen_at_post: dict[str, list[str]] = field(default_factory=dict)
    lose_answer: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def routes(self, app: FastAPI) -> None:
        app.post("/auth/token", status_code=201)(self.token)
        app.get("/api/v2/monitor/health")(self.health)
        app.get("/api/v2/dags/{dag_id}")(self.dag)
        app.get("/api/v2/dags/{dag_id}/dagRuns/{run_id}")(self.get_run)
        app.post("/api/v2/dags/{dag_id}/dagRuns")(self.post_run)

    def token(self) -> dict[str, str]:
        self.calls.append("token")
        claims = base64.urlsafe_b64encode(json.dumps({"exp": time.time() + 3600}).encode()).decode()
        return {"access_token": f"e30.{claims.rstrip('=')}.sig"}

    def health(self) -> dict[str, str]:
        time.sleep(0.005)  # Airflow's endpoints do some database work in their thread
        return {"status": "healthy"}

    def dag(self, dag_id: str) -> dict[str, Any]:
        self.calls.append(f"GET {dag_id}")
        time.sleep(0.005)
        return {"dag_id": dag_id, "is_paused": False}

    def get_run(self, dag_id: str, run_id: str) -> Any:
        self.calls.append(f"GET {run_id}")
        time.sleep(0.005)
        if run_id not in self.runs:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return {"dag_run_id": run_id, "state": "queued"}

    def post_run(self, dag_id: str, body: dict[str, Any]) -> Any:
        run_id = body["dag_run_id"]
        self.calls.append(f"POST {run_id}")
        with psycopg2.connect(self.history_uri) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT decision FROM kubernaut_alert_decisions WHERE dag_run_id = %s ORDER BY id", (run_id,)
            )
            self.seen_at_post.setdefault(run_id, [r[0] for r in cur.fetchall()])
        conn.close()
        with self.lock:
            if run_id in self.runs:
                return JSONResponse({"detail": "exists"}, status_code=409)
            self.runs[run_id] = body
        if run_id in self.lose_answer:
            self.lose_answer.discard(run_id)
            time.sleep(TIMEOUT + 1)  # created, but the answer comes too late for the caller
        return {"dag_run_id": run_id, "dag_id": dag_id}


@pytest.fixture(scope="module")
def history_uri() -> Iterator[str]:
    name = f"kn_intake_load_{secrets.token_hex(4)}"
    uri = create_database(name)
    History(connect=lambda: psycopg2.connect(uri)).migrate()
    try:
        yield uri
    finally:
        drop_database(name)


@pytest.fixture(scope="module")
def server(history_uri: str) -> Iterator[tuple[str, StandInAirflow]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    airflow = StandInAirflow(history_uri)
    root = FastAPI()
    airflow.routes(root)
    settings = IntakeSettings(templates_dir=REPO / "templates", token=TokenSource(TOKEN))
    service = IntakeService(
        settings,
        history_factory=lambda: IntakeHistory(connect=lambda: psycopg2.connect(history_uri)),
        airflow=AirflowGateway(
            AirflowSettings(url=url, username="intake", password="pw", timeout=TIMEOUT, attempts=2)
        ),
        config=KubernautConfig(),
    )
    root.mount("/kubernaut", create_app(service))
    uv = uvicorn.Server(uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.01)
    yield url, airflow
    uv.should_exit = True
    thread.join(10)


def decisions_of(history_uri: str, pod: str) -> list[tuple[str, str]]:
    with psycopg2.connect(history_uri) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT decision, dag_run_id FROM kubernaut_alert_decisions WHERE target_name = %s ORDER BY id",
            (pod,),
        )
        rows = [(str(d), str(r)) for d, r in cur.fetchall()]
    conn.close()
    return rows


async def post_all(
    url: str, bodies: list[dict[str, Any]], concurrency: int
) -> list[tuple[int, dict[str, Any], float]]:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
            async with gate:
                t0 = time.perf_counter()
                r = await client.post(
                    f"{url}/kubernaut/alerts", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
                )
                return r.status_code, r.json(), time.perf_counter() - t0

        return list(await asyncio.gather(*(one(b) for b in bodies)))


async def sample_health(url: str, stop: asyncio.Event) -> list[float]:
    """Airflow's own endpoint (a thread-pool one) while the storm runs."""
    samples = []
    async with httpx.AsyncClient(timeout=60) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            await client.get(f"{url}/api/v2/monitor/health")
            samples.append(time.perf_counter() - t0)
            await asyncio.sleep(0.02)
    return samples


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def test_fifty_distinct_alerts_for_one_pod_one_run_49_busy_server_stays_responsive(
    server: tuple[str, StandInAirflow], history_uri: str
) -> None:
    url, airflow = server
    pod, tag = "storm-pod", secrets.token_hex(3)
    bodies = [webhook_body([storm_alert(pod, f"{tag}{i:010x}", stamp(), f"c{i}")]) for i in range(50)]
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_health(url, stop))
    started = time.perf_counter()
    answers = await post_all(url, bodies, concurrency=50)
    elapsed = time.perf_counter() - started
    stop.set()
    health = await sampler

    assert [s for s, _, _ in answers] == [200] * 50, [a for s, a, _ in answers if s != 200][:3]
    decided = sorted(a["decisions"][0]["decision"] for _, a, _ in answers)
    assert decided == ["busy"] * 49 + ["triggered"]
    launched = [a["decisions"][0]["dag_run_id"] for _, a, _ in answers if a["summary"].get("triggered")]
    assert [r for r in airflow.runs if r.startswith(f"alert__{tag}")] == launched
    assert ("triggered", launched[0]) in decisions_of(history_uri, pod)
    # Starved, each launch attempt waited for TIMEOUT (s) and the storm took minutes.
    assert elapsed < 2 * TIMEOUT, f"storm took {elapsed:.1f}s"
    assert max(health) < TIMEOUT, f"Airflow's own endpoint waited {max(health):.1f}s"


async def test_identical_posts_one_run_and_duplicates_without_calling_airflow(
    server: tuple[str, StandInAirflow], history_uri: str
) -> None:
    url, airflow = server
    pod, tag = "repeat-pod", secrets.token_hex(3)
    body = webhook_body([storm_alert(pod, f"{tag}same00000", stamp())])
    first = await post_all(url, [body], concurrency=1)
    assert first[0][1]["decisions"][0]["decision"] == "triggered"
    airflow.calls.clear()
    answers = await post_all(url, [body] * 100, concurrency=10)
    assert {s for s, _, _ in answers} == {200}
    assert {a["decisions"][0]["decision"] for _, a, _ in answers} == {"duplicate"}
    assert airflow.calls == []  # known from the history: Airflow is not asked again
    rows = decisions_of(history_uri, pod)
    assert [d for d, _ in rows].count("triggered") == 1 and len(rows) == 101


async def test_the_launch_record_is_committed_before_airflow_gets_the_post(
    server: tuple[str, StandInAirflow],
) -> None:
    url, airflow = server
    body = webhook_body([storm_alert("record-pod", f"{secrets.token_hex(3)}rec0000000", stamp())])
    ((status, answer, _),) = await post_all(url, [body], concurrency=1)
    run_id = answer["decisions"][0]["dag_run_id"]
    assert status == 200 and answer["decisions"][0]["decision"] == "triggered"
    assert airflow.seen_at_post[run_id] == ["triggering"]  # visible to any other connection


async def test_a_post_answered_too_late_still_records_its_run_as_triggered(
    server: tuple[str, StandInAirflow], history_uri: str
) -> None:
    url, airflow = server
    pod = "late-pod"
    body = webhook_body([storm_alert(pod, f"{secrets.token_hex(3)}late000000", stamp())])
    run_id = dag_run_id(Alert.model_validate(body["alerts"][0]))
    airflow.lose_answer.add(run_id)
    ((status, answer, _),) = await post_all(url, [body], concurrency=1)
    # The first POST created the run but timed out; the retry got 409: that run is ours.
    assert run_id in airflow.runs
    assert status == 200 and answer["decisions"][0]["decision"] == "triggered", answer
    assert decisions_of(history_uri, pod) == [("triggered", run_id)]


def test_the_target_claim_never_waits(history_uri: str) -> None:
    holder = IntakeHistory(connect=lambda: psycopg2.connect(history_uri))
    other = IntakeHistory(connect=lambda: psycopg2.connect(history_uri))
    try:
        with holder.target_claim("demo", "web") as held:
            assert held
            t0 = time.perf_counter()
            with other.target_claim("demo", "web") as got:
                assert not got
            assert time.perf_counter() - t0 < 0.5
            with other.target_claim("demo", "api") as got:
                assert got  # another target is free
        with other.target_claim("demo", "web") as got:
            assert got  # released with the holder's transaction
    finally:
        holder.close()
        other.close()


def test_only_the_claim_waits_for_the_wal_flush(history_uri: str) -> None:
    """Launch records are written in the claim, durably; other decision rows asynchronously."""
    h = IntakeHistory(connect=lambda: psycopg2.connect(history_uri))
    try:
        fields = {"fingerprint": "f", "alert_name": "A", "alert_status": "firing", "reason": "r"}
        assert h._one("SHOW synchronous_commit") == {"synchronous_commit": "off"}
        with h.target_claim("demo", "durable") as held:
            h.insert_decision(**fields, decision="busy")
            assert held and h._one("SHOW synchronous_commit") == {"synchronous_commit": "off"}
            h.insert_decision(**fields, decision="triggering", dag_run_id="durable-run")
            assert h._one("SHOW synchronous_commit") == {"synchronous_commit": "on"}
        assert h._one("SHOW synchronous_commit") == {"synchronous_commit": "off"}
    finally:
        h.close()


def test_launch_records_are_taken_over_only_when_abandoned(history_uri: str) -> None:
    h = IntakeHistory(connect=lambda: psycopg2.connect(history_uri))
    try:
        fields = {
            "fingerprint": "f",
            "alert_name": "A",
            "alert_status": "firing",
            "reason": "r",
            "dag_id": DAG,
            "target": {"kind": "Pod", "namespace": "demo", "name": "takeover"},
        }
        fresh = h.insert_decision(**fields, decision="triggering", dag_run_id="run-fresh")
        lost = h.insert_decision(**fields, decision="triggering", dag_run_id="run-lost")
        h.settle_launch(lost, "unconfirmed", "no answer")
        assert not h.take_over_launch(fresh, "again", in_flight_seconds=120)  # still in flight
        assert h.take_over_launch(fresh, "again", in_flight_seconds=0)  # abandoned (killed mid-POST)
        assert h.take_over_launch(lost, "again", in_flight_seconds=120)
        assert not h.take_over_launch(lost, "again", in_flight_seconds=120)  # one delivery wins
        record = h.launch_of(DAG, "run-lost")
        assert record is not None and record["decision"] == "triggering" and record["reason"] == "again"
        h.settle_launch(lost, "triggered", "confirmed")
        since = datetime(2000, 1, 1, tzinfo=UTC)
        assert sorted(r["decision"] for r in h.recent_launches("demo", "takeover", since)) == [
            "triggered",
            "triggering",
        ]
    finally:
        h.close()
