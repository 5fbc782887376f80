"""The webhook: token, size, JSON, shape, 503s, decisions in the body; fuzzed for 5xx and launches."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubernaut.config import KubernautConfig
from kubernaut.history import HistoryUnavailable
from kubernaut.intake.airflow_client import AirflowUnavailable
from kubernaut.intake.app import create_app
from kubernaut.intake.service import IntakeService
from kubernaut.intake.settings import IntakeSettings, TokenSource
from tests.conftest import REPO
from tests.intake.conftest import FakeAirflow, FakeHistory, alert, payload

TOKEN = "s3cr3t-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_client(
    airflow: Any = None, history: Any = None, max_bytes: int = 1 << 20, token: TokenSource | None = None
) -> tuple[TestClient, FakeAirflow, FakeHistory]:
    airflow = airflow or FakeAirflow()
    history = history or FakeHistory()
    settings_ = IntakeSettings(
        templates_dir=REPO / "templates", token=token or TokenSource(TOKEN), max_body_bytes=max_bytes
    )
    service = IntakeService(
        settings_, history_factory=lambda: history, airflow=airflow, config=KubernautConfig()
    )
    return TestClient(create_app(service), raise_server_exceptions=False), airflow, history


def test_a_grouped_payload_gets_one_decision_per_alert() -> None:
    client, airflow, history = make_client()
    body = payload(
        alert(), alert("NoSuchAlert", fingerprint="ffff"), alert(status="resolved", fingerprint="eeee")
    )
    response = client.post("/alerts", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    got = response.json()
    assert [d["decision"] for d in got["decisions"]] == ["triggered", "no_template", "resolved"]
    assert got["summary"] == {"triggered": 1, "no_template": 1, "resolved": 1}
    assert set(got["decisions"][0]) >= {
        "fingerprint",
        "alertname",
        "decision",
        "template",
        "dag_id",
        "dag_run_id",
        "target",
        "reason",
    }
    assert len(airflow.runs) == 1 and len(history.decisions) == 3


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x"])
def test_without_the_right_bearer_token_401(header: str | None) -> None:
    client, airflow, _ = make_client()
    headers = {"Authorization": header} if header else {}
    response = client.post("/alerts", json=payload(), headers=headers)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert not airflow.runs


def test_no_configured_token_refuses_everything() -> None:
    client, _, _ = make_client(token=TokenSource(None, None))
    assert client.post("/alerts", json=payload(), headers={"Authorization": "Bearer "}).status_code == 401


def test_token_file_is_reread_when_rotated(tmp_path: Path) -> None:
    file = tmp_path / "token"
    file.write_text("first\n")
    source = TokenSource(path=file)
    assert source.accepts("Bearer first")
    file.write_text("second")
    import os

    os.utime(file, (1, 1))  # make sure the mtime differs within the same second
    assert source.accepts("Bearer second") and not source.accepts("Bearer first")


def test_too_large_413_even_without_content_length() -> None:
    client, airflow, _ = make_client(max_bytes=200)
    big = json.dumps(payload()).encode()
    assert client.post("/alerts", content=big, headers=AUTH).status_code == 413
    chunks = iter([big[:100], big[100:]])
    assert client.post("/alerts", content=chunks, headers=AUTH).status_code == 413
    assert not airflow.runs


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe\x00", b"[" * 100000, b""])
def test_malformed_json_400(body: bytes) -> None:
    client, _, _ = make_client()
    response = client.post("/alerts", content=body, headers=AUTH)
    assert response.status_code == 400 and "not valid JSON" in response.json()["detail"]


def test_wrong_shape_422_names_the_field() -> None:
    client, airflow, _ = make_client()
    bad = payload()
    bad["alerts"][0]["labels"]["pod"] = ["a"]
    response = client.post("/alerts", json=bad, headers=AUTH)
    assert response.status_code == 422
    assert "alerts[0].labels.pod" in response.json()["detail"]
    assert not airflow.runs


class DownAirflow(FakeAirflow):
    async def dag_paused(self, dag_id: str) -> bool:
        raise AirflowUnavailable("connection refused")


class DownHistory(FakeHistory):
    def consecutive_failures(self, alert_name: str, namespace: str, name: str) -> int:
        raise HistoryUnavailable("history database unreachable")


@pytest.mark.parametrize(
    ("airflow", "history", "words"),
    [
        (DownAirflow(), None, "Airflow unavailable"),
        (None, DownHistory(), "history database unavailable"),
    ],
)
def test_unreachable_dependencies_answer_503_so_alertmanager_retries(
    airflow: Any, history: Any, words: str
) -> None:
    client, _, _ = make_client(airflow=airflow, history=history)
    body = payload(alert("NoSuchAlert", fingerprint="ffff"), alert())
    response = client.post("/alerts", json=body, headers=AUTH)
    assert response.status_code == 503 and response.headers["retry-after"]
    assert words in response.json()["detail"]
    assert [d["decision"] for d in response.json()["decisions"]] == ["no_template"]  # what was done so far


def test_a_template_added_while_running_is_used_within_a_second(tmp_path: Path) -> None:
    settings_ = IntakeSettings(templates_dir=tmp_path, token=TokenSource(TOKEN))
    service = IntakeService(
        settings_, history_factory=FakeHistory, airflow=FakeAirflow(), config=KubernautConfig()
    )
    client = TestClient(create_app(service))
    first = client.post("/alerts", json=payload(alert("KubeContainerWaiting")), headers=AUTH).json()
    assert first["decisions"][0]["decision"] == "no_template"
    (tmp_path / "pod-diagnostics.yaml").write_text((REPO / "templates/pod-diagnostics.yaml").read_text())
    time.sleep(1.1)
    again = client.post("/alerts", json=payload(alert("KubeContainerWaiting")), headers=AUTH).json()
    assert again["decisions"][0]["decision"] == "triggered"


def test_the_server_start_warms_the_intake_up_in_the_background() -> None:
    client, _, history = make_client()
    with client:  # runs the lifespan, as the api-server does for mounted apps
        deadline = time.monotonic() + 10
        while history.pings == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert history.pings == 1  # a history connection ready before the first alert
        assert client.get("/healthz").json() == {"status": "ok"}


def test_openapi_documents_the_payload() -> None:
    client, _, _ = make_client()
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/alerts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "alerts" in body["properties"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def _mutated_payload(draw: st.DrawFn) -> Any:
    body: Any = payload(alert())
    path = draw(
        st.sampled_from(
            [
                (),
                ("alerts",),
                ("alerts", 0),
                ("alerts", 0, "labels"),
                ("alerts", 0, "labels", "alertname"),
                ("alerts", 0, "startsAt"),
                ("alerts", 0, "fingerprint"),
                ("alerts", 0, "status"),
                ("status",),
                ("version",),
                ("truncatedAlerts",),
                ("alerts", 0, "annotations"),
            ]
        )
    )
    value = draw(json_values)
    if not path:
        return value
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


@st.composite
def garbage(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(st.binary(max_size=300))
    return json.dumps(_mutated_payload(draw) if kind == 1 else draw(json_values)).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=garbage())
def test_fuzz_malformed_payloads_never_5xx_never_launch(body: bytes) -> None:
    client, airflow, _ = make_client(airflow=FakeAirflow(paused={"kubernaut_pod_crash_recovery"}))
    response = client.post("/alerts", content=body, headers=AUTH)
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        # A mutation can still be a valid payload; then it was decided normally (the DAG is paused).
        assert all(d["decision"] != "triggered" for d in response.json()["decisions"])
    assert not airflow.runs
