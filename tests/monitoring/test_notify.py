"""notify and create_alert_annotation against a local recording HTTP server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kubernaut.actions import ActionError, registry
from kubernaut.config import KubernautConfig
from kubernaut.testing import ParamsInvalid, RecordingServer, Reply, run_action

notify = registry.get("monitoring", "notify")
annotate = registry.get("monitoring", "create_alert_annotation")
Conn = Callable[..., str]


def test_notify_posts_the_message_to_the_configured_connection(
    webhook_server: RecordingServer, airflow_connection: Conn
) -> None:
    airflow_connection("chatops", webhook_server.url + "/hooks/abc", token="s3cret")
    config = KubernautConfig(notify_conn_id="chatops")
    params = {"message": "restarted web-1", "severity": "warning", "fields": {"pod": "web-1"}}
    result = run_action(notify, params, config=config)
    [request] = webhook_server.requests
    assert request.method == "POST" and request.path == "/hooks/abc/"
    assert request.headers["Authorization"] == "Bearer s3cret"
    body = request.json()
    assert (
        body["text"] == "restarted web-1"
        and body["severity"] == "warning"
        and body["fields"] == {"pod": "web-1"}
    )
    assert (
        result.output["sent"] and result.output["status"] == 200 and result.output["response"] == {"ok": True}
    )


def test_notify_retries_5xx_then_succeeds(webhook_server: RecordingServer, airflow_connection: Conn) -> None:
    conn = airflow_connection("hook", webhook_server.url)
    webhook_server.reply_with(Reply(503, {"e": "busy"}), Reply(502, "bad gateway"))
    result = run_action(notify, {"message": "hi", "conn_id": conn, "payload": {"custom": 1}})
    assert result.output["status"] == 200 and len(webhook_server.requests) == 3
    assert all(r.json() == {"custom": 1} for r in webhook_server.requests)


def test_notify_gives_up_after_retries_with_status_and_body(
    webhook_server: RecordingServer, airflow_connection: Conn
) -> None:
    conn = airflow_connection("hook", webhook_server.url)
    webhook_server.default = Reply(500, {"error": "database down"})
    with pytest.raises(ActionError, match=r"connection 'hook': POST / returned HTTP 500: .*database down"):
        run_action(notify, {"message": "hi", "conn_id": conn, "retries": 1})
    assert len(webhook_server.requests) == 2


def test_notify_does_not_retry_a_client_error(
    webhook_server: RecordingServer, airflow_connection: Conn
) -> None:
    conn = airflow_connection("hook", webhook_server.url)
    webhook_server.default = Reply(400, {"error": "invalid_payload"})
    with pytest.raises(ActionError, match=r"HTTP 400: .*invalid_payload"):
        run_action(notify, {"message": "hi", "conn_id": conn})
    assert len(webhook_server.requests) == 1


def test_notify_times_out(webhook_server: RecordingServer, airflow_connection: Conn) -> None:
    conn = airflow_connection("hook", webhook_server.url)
    webhook_server.reply_with(Reply(200, delay=2.0))
    with pytest.raises(ActionError, match=r"timed out after 0.3s"):
        run_action(notify, {"message": "hi", "conn_id": conn, "timeout": "300ms", "retries": 0})


def test_notify_dry_run_sends_nothing(webhook_server: RecordingServer, airflow_connection: Conn) -> None:
    conn = airflow_connection("hook", webhook_server.url)
    result = run_action(notify, {"message": "hi", "conn_id": conn}, dry_run=True)
    assert result.output["sent"] is False and result.output["payload"]["text"] == "hi"
    assert webhook_server.requests == []


def test_notify_needs_a_connection() -> None:
    with pytest.raises(ActionError, match="no webhook connection"):
        run_action(notify, {"message": "hi"})
    with pytest.raises(ActionError, match="connection 'nowhere' is not available"):
        run_action(notify, {"message": "hi", "conn_id": "nowhere"}, dry_run=True)


@pytest.mark.parametrize(
    "path", ["http://evil.example/x", "//evil.example/x", "/a/../../x", "relative", "/a b"]
)
def test_notify_path_cannot_leave_the_connection(path: str) -> None:
    with pytest.raises(ParamsInvalid, match="path must start with '/'"):
        run_action(notify, {"message": "hi", "conn_id": "hook", "path": path})


def test_notify_refuses_a_non_http_connection(
    airflow_connection: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_HISTORY", "postgresql://u:p@db:5432/x")
    with pytest.raises(ActionError, match="type 'postgres'; an HTTP service needs type 'http'"):
        run_action(notify, {"message": "hi", "conn_id": "history"})


def test_annotation_uses_the_grafana_shape(webhook_server: RecordingServer, airflow_connection: Conn) -> None:
    conn = airflow_connection("grafana", webhook_server.url)
    webhook_server.reply_with(Reply(200, {"id": 7, "message": "Annotation added"}))
    params = {
        "text": "kubernaut restarted web",
        "tags": ["kubernaut", "shop"],
        "dashboard_uid": "abc",
        "conn_id": conn,
    }
    result = run_action(annotate, params)
    [request] = webhook_server.requests
    body = request.json()
    assert (
        request.path == "/api/annotations"
        and body["tags"] == ["kubernaut", "shop"]
        and body["dashboardUID"] == "abc"
    )
    assert isinstance(body["time"], int) and result.output["response"]["id"] == 7
