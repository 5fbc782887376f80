"""http_request against a local recording HTTP server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kubernaut.actions import ActionError, registry
from kubernaut.testing import ParamsInvalid, RecordingServer, Reply, run_action

http_request = registry.get("custom", "http_request")
Conn = Callable[..., str]


def test_post_json_to_a_path_below_the_connection(
    webhook_server: RecordingServer, airflow_connection: Conn
) -> None:
    conn = airflow_connection("ops_api", webhook_server.url + "/v1")
    webhook_server.reply_with(Reply(201, {"ticket": 42}))
    params = {
        "conn_id": conn,
        "method": "POST",
        "path": "/tickets",
        "query": {"team": "sre", "urgent": True},
        "body": {"title": "pod restarted"},
        "headers": {"X-Request-Source": "kubernaut"},
        "expected_status": [201],
    }
    result = run_action(http_request, params)
    [request] = webhook_server.requests
    assert request.method == "POST" and request.path == "/v1/tickets?team=sre&urgent=true"
    assert request.json() == {"title": "pod restarted"} and request.headers["X-Request-Source"] == "kubernaut"
    assert result.output["status"] == 201 and result.output["json"] == {"ticket": 42}


def test_unexpected_status_fails_with_status_and_body(
    webhook_server: RecordingServer, airflow_connection: Conn
) -> None:
    conn = airflow_connection("ops_api", webhook_server.url)
    webhook_server.default = Reply(200, {"state": "odd"})
    with pytest.raises(ActionError, match=r"GET /status returned HTTP 200 \(expected \[204\]\): .*odd"):
        run_action(http_request, {"conn_id": conn, "path": "/status", "expected_status": [204]})


def test_redirects_are_not_followed(webhook_server: RecordingServer, airflow_connection: Conn) -> None:
    conn = airflow_connection("ops_api", webhook_server.url)
    webhook_server.default = Reply(302, {})
    with pytest.raises(ActionError, match="returned HTTP 302"):
        run_action(http_request, {"conn_id": conn})
    assert len(webhook_server.requests) == 1


def test_retries_only_when_asked(webhook_server: RecordingServer, airflow_connection: Conn) -> None:
    conn = airflow_connection("ops_api", webhook_server.url)
    webhook_server.reply_with(Reply(503), Reply(503))
    with pytest.raises(ActionError, match="HTTP 503"):
        run_action(http_request, {"conn_id": conn})
    assert run_action(http_request, {"conn_id": conn, "retries": 2}).output["status"] == 200
    assert len(webhook_server.requests) == 3


def test_dry_run_sends_nothing(webhook_server: RecordingServer, airflow_connection: Conn) -> None:
    conn = airflow_connection("ops_api", webhook_server.url)
    result = run_action(http_request, {"conn_id": conn, "method": "DELETE", "path": "/x"}, dry_run=True)
    assert result.output == {
        "method": "DELETE",
        "connection": "ops_api",
        "path": "/x",
        "sent": False,
        "dry_run": True,
        "body": None,
    }
    assert webhook_server.requests == []


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"path": "https://attacker.example/"}, "path must start with '/'"),
        ({"path": "//attacker.example/"}, "path must start with '/'"),
        ({"path": "/../admin"}, "path must start with '/'"),
        ({"conn_id": "http://attacker.example"}, "conn_id"),
        ({"headers": {"Authorization": "Bearer x"}}, "auth belongs in the connection"),
        ({"headers": {"X-A": "a\r\nInjected: 1"}}, "line break"),
        ({"method": "TRACE"}, "method"),
        ({"expected_status": [99]}, "HTTP statuses"),
        ({"url": "http://x"}, "Extra inputs are not permitted"),
    ],
)
def test_parameters_cannot_point_elsewhere(params: dict[str, object], error: str) -> None:
    with pytest.raises(ParamsInvalid, match=error):
        run_action(http_request, {"conn_id": "ops_api", **params})
