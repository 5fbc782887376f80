"""Outbound messages: a notification webhook and a dashboard annotation (Grafana's
``/api/annotations`` shape). Targets are Airflow connections only, never alert data."""

from __future__ import annotations

import datetime as dt
import time
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator

from kubernaut.actions.base import Action, ActionContext, ActionError, ActionParams, ActionResult
from kubernaut.actions.monitoring_common import deadline
from kubernaut.actions.registry import register
from kubernaut.durations import Duration
from kubernaut.services.connection import CONN_ID_PATTERN, endpoint_from_connection
from kubernaut.services.http import safe_path
from kubernaut.services.webhook import payload_size_ok, post_json


class _WebhookParams(ActionParams):
    conn_id: str | None = Field(
        default=None,
        pattern=CONN_ID_PATTERN,
        description="Airflow connection (default: config notify_conn_id)",
    )
    retries: int = Field(default=3, ge=0, le=5, description="Retries on 5xx and connection errors")
    timeout: Duration = Field(default=timedelta(seconds=10), description="Per-request timeout")

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(minutes=5):
            raise ValueError("timeout must be between 0 and 5m")
        return value


def _send(
    ctx: ActionContext, conn_id: str | None, path: str, payload: Any, params: _WebhookParams
) -> ActionResult:
    target = conn_id or ctx.config.notify_conn_id
    if not target:
        raise ActionError(
            "no webhook connection: set the step's conn_id or notify_conn_id in the configuration"
        )
    endpoint = endpoint_from_connection(target)  # resolved in dry runs too: a missing connection shows early
    if ctx.dry_run:
        return ActionResult(output={"sent": False, "dry_run": True, "connection": target, "payload": payload})
    reply = post_json(
        target,
        path,
        payload,
        retries=params.retries,
        timeout=params.timeout.total_seconds(),
        deadline=deadline(ctx),
    )
    ctx.logger.info("kubernaut: posted to %s%s: HTTP %s", endpoint.name, path, reply["status"])
    # A message is not a system change: nothing to undo, so `changed` stays False.
    return ActionResult(output={"sent": True, "connection": target, **reply})


class NotifyParams(_WebhookParams):
    message: str = Field(min_length=1, max_length=8000, description="The notification text")
    title: str | None = Field(default=None, max_length=500)
    severity: Literal["info", "warning", "critical"] = "info"
    fields: dict[str, Any] = Field(default_factory=dict, description="Extra structured data sent with it")
    payload: dict[str, Any] | None = Field(
        default=None, description="Send this JSON instead of the default shape (e.g. Slack blocks)"
    )
    path: str = Field(default="/", description="Path below the connection's URL")

    _path = field_validator("path")(safe_path)
    _size = field_validator("payload", "fields")(payload_size_ok)

    def body(self) -> dict[str, Any]:
        if self.payload is not None:
            return self.payload
        # `text` makes Slack/Mattermost incoming webhooks show the message as is.
        return {
            "source": "kubernaut",
            "title": self.title,
            "text": self.message,
            "severity": self.severity,
            "fields": self.fields,
            "sent_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }


@register
class Notify(Action[NotifyParams]):
    kind = "monitoring"
    name = "notify"
    Params = NotifyParams
    summary = "POST a JSON notification to a webhook connection (retries 5xx); no cluster change."
    dry_run_doc = "connection resolved, nothing sent"

    def run(self, ctx: ActionContext, params: NotifyParams) -> ActionResult:
        return _send(ctx, params.conn_id, params.path, payload_size_ok(params.body()), params)


class AnnotationParams(_WebhookParams):
    text: str = Field(min_length=1, max_length=8000, description="Annotation text")
    tags: list[str] = Field(default_factory=lambda: ["kubernaut"], max_length=20)
    dashboard_uid: str | None = Field(default=None, max_length=200)
    panel_id: int | None = None
    path: str = Field(default="/api/annotations", description="Path below the connection's URL")

    _path = field_validator("path")(safe_path)


@register
class CreateAlertAnnotation(Action[AnnotationParams]):
    kind = "monitoring"
    name = "create_alert_annotation"
    Params = AnnotationParams
    summary = "POST a dashboard annotation (Grafana /api/annotations shape) marking the remediation."
    dry_run_doc = "connection resolved, nothing sent"

    def run(self, ctx: ActionContext, params: AnnotationParams) -> ActionResult:
        payload: dict[str, Any] = {"time": int(time.time() * 1000), "tags": params.tags, "text": params.text}
        if params.dashboard_uid:
            payload["dashboardUID"] = params.dashboard_uid
        if params.panel_id is not None:
            payload["panelId"] = params.panel_id
        return _send(ctx, params.conn_id, params.path, payload, params)
