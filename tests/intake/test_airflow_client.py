"""The Airflow client against a fake Airflow REST API on loopback: token, refresh, retries, 409, 503."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from kubernaut.intake.airflow_client import (
    AirflowGateway,
    AirflowSettings,
    AirflowUnavailable,
    Triggered,
    token_expiry,
)
from kubernaut.local_stack import free_port


def jwt(n: int, exp: float) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": exp, "n": n}).encode()).decode().rstrip("=")
    return f"e30.{claims}.sig"


class FakeAirflow:
    def __init__(self) -> None:
        self.tokens_issued = 0
        self.valid: set[str] = set()
        self.fail_next: list[int] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.paused: dict[str, bool] = {}
        self.slow_create: set[str] = set()
        self.dag_reads = 0
        self.delay = 0.0
        self.in_flight = self.peak_in_flight = 0
        self.app = FastAPI()
        self.app.post("/auth/token", status_code=201)(self.token)
        self.app.post("/api/v2/dags/{dag_id}/dagRuns")(self.trigger)
        self.app.get("/api/v2/dags/{dag_id}/dagRuns/{run_id}")(self.get_run)
        self.app.get("/api/v2/dags/{dag_id}")(self.get_dag)

    async def token(self, body: dict[str, str]) -> Any:
        if body != {"username": "intake", "password": "pw"}:
            return JSONResponse({"detail": "bad credentials"}, status_code=401)
        await asyncio.sleep(self.delay)
        self.tokens_issued += 1
        token = jwt(self.tokens_issued, time.time() + 3600)
        self.valid = {token}
        return {"access_token": token}

    def _check(self, request: Request) -> JSONResponse | None:
        if self.fail_next:
            return JSONResponse({"detail": "injected"}, status_code=self.fail_next.pop(0))
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.valid:
            return JSONResponse({"detail": "expired"}, status_code=401)
        return None

    async def trigger(self, dag_id: str, request: Request) -> Any:
        if (error := self._check(request)) is not None:
            return error
        body = await request.json()
        assert "logical_date" in body and body["logical_date"] is None
        if body["dag_run_id"] in self.runs:
            return JSONResponse({"detail": "exists"}, status_code=409)
        self.runs[body["dag_run_id"]] = body
        if body["dag_run_id"] in self.slow_create:
            await asyncio.sleep(1.0)
        return {"dag_run_id": body["dag_run_id"], "dag_id": dag_id}

    async def get_run(self, dag_id: str, run_id: str, request: Request) -> Any:
        if (error := self._check(request)) is not None:
            return error
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if run_id not in self.runs:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse({"detail": "partial body is fine for the test"}, status_code=200)

    async def get_dag(self, dag_id: str, request: Request) -> Any:
        if (error := self._check(request)) is not None:
            return error
        self.dag_reads += 1
        await asyncio.sleep(self.delay)
        return {"dag_id": dag_id, "is_paused": self.paused.get(dag_id, False)}


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeAirflow, str]]:
    airflow = FakeAirflow()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(airflow.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield airflow, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def gateway(url: str, **kw: Any) -> tuple[AirflowGateway, list[float]]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    clock = kw.pop("clock", time.monotonic)
    username, timeout = kw.pop("username", "intake"), kw.pop("timeout", 5)
    settings = AirflowSettings(url=url, username=username, password="pw", timeout=timeout, **kw)
    return AirflowGateway(settings, sleep=sleep, clock=clock), sleeps


async def test_trigger_then_409_means_already_there(fake: tuple[FakeAirflow, str]) -> None:
    airflow, url = fake
    gw, _ = gateway(url)
    assert await gw.trigger("d", "alert__a__1", {"alert": {"x": 1}}) is Triggered.CREATED
    assert airflow.runs["alert__a__1"]["conf"] == {"alert": {"x": 1}}
    assert await gw.trigger("d", "alert__a__1", {"alert": {"x": 1}}) is Triggered.EXISTED
    assert await gw.run_exists("d", "alert__a__1") is True
    assert await gw.run_exists("d", "alert__nope") is False


async def test_a_409_after_an_unanswered_post_is_our_own_run(fake: tuple[FakeAirflow, str]) -> None:
    airflow, url = fake
    gw, _ = gateway(url, attempts=3, timeout=0.5)
    airflow.slow_create.add("alert__late__1")  # created, answered after the client's timeout
    assert await gw.trigger("d", "alert__late__1", {}) is Triggered.EXISTED_AFTER_RETRY
    assert "alert__late__1" in airflow.runs


async def test_token_is_cached_and_refreshed_once_on_401(fake: tuple[FakeAirflow, str]) -> None:
    airflow, url = fake
    gw, _ = gateway(url)
    await gw.trigger("d", "alert__b__1", {})
    issued = airflow.tokens_issued
    await gw.trigger("d", "alert__b__2", {})
    assert airflow.tokens_issued == issued  # cached
    airflow.valid = set()  # revoked / expired server-side
    assert await gw.trigger("d", "alert__b__3", {}) is Triggered.CREATED
    assert airflow.tokens_issued == issued + 1


async def test_a_burst_fetches_one_token_and_keeps_a_bounded_number_in_flight(
    fake: tuple[FakeAirflow, str],
) -> None:
    airflow, url = fake
    gw, _ = gateway(url, max_concurrent=3)
    before = airflow.tokens_issued
    airflow.delay = 0.05
    try:
        answers = await asyncio.gather(*(gw.run_exists("d", f"alert__burst__{i}") for i in range(20)))
    finally:
        airflow.delay = 0.0
    assert answers == [False] * 20
    assert airflow.tokens_issued == before + 1
    assert airflow.peak_in_flight == 3  # the api-server's threads are left to Airflow's own work


async def test_paused_is_cached_briefly(fake: tuple[FakeAirflow, str]) -> None:
    airflow, url = fake
    now = [1000.0]
    gw, _ = gateway(url, paused_ttl=5.0, clock=lambda: now[0])
    airflow.paused["d"] = False
    assert await gw.dag_paused("d") is False
    airflow.paused["d"] = True
    now[0] += 4
    assert await gw.dag_paused("d") is False  # within the TTL: no request
    now[0] += 2
    assert await gw.dag_paused("d") is True


async def test_a_burst_reads_the_paused_flag_once(fake: tuple[FakeAirflow, str]) -> None:
    airflow, url = fake
    gw, _ = gateway(url)
    before, airflow.delay = airflow.dag_reads, 0.05
    try:
        answers = await asyncio.gather(*(gw.dag_paused("burst") for _ in range(20)))
    finally:
        airflow.delay = 0.0
    assert answers == [False] * 20 and airflow.dag_reads == before + 1


async def test_transient_errors_are_retried_with_backoff(fake: tuple[FakeAirflow, str]) -> None:
    airflow, url = fake
    gw, sleeps = gateway(url, attempts=4, backoff=0.1)
    airflow.fail_next = [503, 502]
    assert await gw.trigger("d", "alert__c__1", {}) is Triggered.CREATED
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] * 0.6  # exponential, with jitter


async def test_persistent_5xx_becomes_unavailable(fake: tuple[FakeAirflow, str]) -> None:
    airflow, url = fake
    gw, sleeps = gateway(url, attempts=3)
    airflow.fail_next = [500, 500, 500]
    with pytest.raises(AirflowUnavailable, match="after 3 attempts") as caught:
        await gw.trigger("d", "alert__d__1", {})
    assert len(sleeps) == 2 and caught.value.uncertain  # a 500 may come after the run was created


async def test_refusals_before_processing_are_certain(fake: tuple[FakeAirflow, str]) -> None:
    airflow, url = fake
    gw, _ = gateway(url, attempts=2)
    airflow.fail_next = [503, 429]
    with pytest.raises(AirflowUnavailable) as caught:
        await gw.trigger("d", "alert__d__2", {})
    assert not caught.value.uncertain and "alert__d__2" not in airflow.runs


async def test_unreachable_airflow_is_unavailable() -> None:
    gw, _ = gateway(f"http://127.0.0.1:{free_port()}", attempts=2)
    with pytest.raises(AirflowUnavailable, match="unreachable") as caught:
        await gw.trigger("d", "alert__e__1", {})
    assert not caught.value.uncertain  # never connected: nothing was created


async def test_wrong_credentials_are_reported_not_retried(fake: tuple[FakeAirflow, str]) -> None:
    _, url = fake
    gw, sleeps = gateway(url, username="nobody")
    with pytest.raises(AirflowUnavailable, match="refused the intake's credentials"):
        await gw.trigger("d", "alert__f__1", {})
    assert sleeps == []


def test_token_expiry_reads_exp_without_verifying() -> None:
    assert token_expiry(jwt(1, 1234.0)) == 1234.0
    assert token_expiry("garbage") is None


def test_settings_from_env() -> None:
    s = AirflowSettings.from_env(
        {
            "AIRFLOW__API__BASE_URL": "http://af:8080/",
            "KUBERNAUT_AIRFLOW_USERNAME": "u",
            "KUBERNAUT_AIRFLOW_PASSWORD": "p",
        }
    )
    assert (s.url, s.username, s.password) == ("http://af:8080", "u", "p")


async def test_warm_builds_the_client_without_a_request_and_tls_only_for_https() -> None:
    plain, _ = gateway(f"http://127.0.0.1:{free_port()}")  # nothing listens: warm() must not call
    await plain.warm()
    assert plain._tls is None  # no CA bundle loaded for plain http
    secure, _ = gateway("https://airflow.invalid")
    await secure.warm()
    assert secure._tls is not None and secure._tls.verify_mode is ssl.CERT_REQUIRED
