"""The Airflow client against a fake Airflow REST API on loopback: token, refresh, retries, 409, 503."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from kubernaut.intake.airflow_client import AirflowGateway, AirflowSettings, AirflowUnavailable, token_expiry
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
        self.app = FastAPI()
        self.app.post("/auth/token", status_code=201)(self.token)
        self.app.post("/api/v2/dags/{dag_id}/dagRuns")(self.trigger)
        self.app.get("/api/v2/dags/{dag_id}/dagRuns/{run_id}")(self.get_run)

    def token(self, body: dict[str, str]) -> Any:
        if body != {"username": "intake", "password": "pw"}:
            return JSONResponse({"detail": "bad credentials"}, status_code=401)
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
        return {"dag_run_id": body["dag_run_id"], "dag_id": dag_id}

    def get_run(self, dag_id: str, run_id: str, request: Request) -> Any:
        if (error := self._check(request)) is not None:
            return error
        if run_id not in self.runs:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse({"detail": "partial body is fine for the test"}, status_code=200)


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
    settings = AirflowSettings(url=url, username=kw.pop("username", "intake"), password="pw", timeout=5, **kw)
    return AirflowGateway(settings, sleep=sleeps.append), sleeps


def test_trigger_then_409_means_already_there(fake: tuple[FakeAirflow, str]) -> None:
    airflow, url = fake
    gw, _ = gateway(url)
    assert gw.trigger("d", "alert__a__1", {"alert": {"x": 1}}) is True
    assert airflow.runs["alert__a__1"]["conf"] == {"alert": {"x": 1}}
    assert gw.trigger("d", "alert__a__1", {"alert": {"x": 1}}) is False
    assert gw.run_exists("d", "alert__a__1") is True
    assert gw.run_exists("d", "alert__nope") is False


def test_token_is_cached_and_refreshed_once_on_401(fake: tuple[FakeAirflow, str]) -> None:
    airflow, url = fake
    gw, _ = gateway(url)
    gw.trigger("d", "alert__b__1", {})
    issued = airflow.tokens_issued
    gw.trigger("d", "alert__b__2", {})
    assert airflow.tokens_issued == issued  # cached
    airflow.valid = set()  # revoked / expired server-side
    assert gw.trigger("d", "alert__b__3", {}) is True
    assert airflow.tokens_issued == issued + 1


def test_transient_errors_are_retried_with_backoff(fake: tuple[FakeAirflow, str]) -> None:
    airflow, url = fake
    gw, sleeps = gateway(url, attempts=4, backoff=0.1)
    airflow.fail_next = [503, 502]
    assert gw.trigger("d", "alert__c__1", {}) is True
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] * 0.6  # exponential, with jitter


def test_persistent_5xx_becomes_unavailable(fake: tuple[FakeAirflow, str]) -> None:
    airflow, url = fake
    gw, sleeps = gateway(url, attempts=3)
    airflow.fail_next = [500, 500, 500]
    with pytest.raises(AirflowUnavailable, match="after 3 attempts"):
        gw.trigger("d", "alert__d__1", {})
    assert len(sleeps) == 2


def test_unreachable_airflow_is_unavailable() -> None:
    gw, _ = gateway(f"http://127.0.0.1:{free_port()}", attempts=2)
    with pytest.raises(AirflowUnavailable, match="unreachable"):
        gw.trigger("d", "alert__e__1", {})


def test_wrong_credentials_are_reported_not_retried(fake: tuple[FakeAirflow, str]) -> None:
    _, url = fake
    gw, sleeps = gateway(url, username="nobody")
    with pytest.raises(AirflowUnavailable, match="refused the intake's credentials"):
        gw.trigger("d", "alert__f__1", {})
    assert sleeps == []


def test_token_expiry_reads_exp_without_verifying() -> None:
    assert token_expiry(jwt(1, 1234.0)) == 1234.0
    assert token_expiry("garbage") is None


def test_settings_from_env() -> None:
    s = AirflowSettings.from_env({"AIRFLOW__API__BASE_URL": "http://af:8080/",
                                  "KUBERNAUT_AIRFLOW_USERNAME": "u",
                                  "KUBERNAUT_AIRFLOW_PASSWORD": "p"})
    assert (s.url, s.username, s.password) == ("http://af:8080", "u", "p")
