"""``KubernautWebhookNotifier``: an Airflow ``BaseNotifier`` that POSTs the escalation as JSON
through an Airflow HTTP connection (host, credentials and headers from the connection, never
from configuration text or alert data)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

from kubernaut.services.http import safe_path
from kubernaut.services.webhook import payload_size_ok, post_json


class KubernautWebhookNotifier(BaseNotifier):
    """POST ``context["escalation"]`` (kubernaut.notifiers.escalation) to ``conn_id`` + ``path``;
    5xx and transport errors are retried, anything else raises."""

    def __init__(
        self,
        conn_id: str,
        *,
        path: str = "/",
        timeout: float = 10.0,
        retries: int = 2,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.path = safe_path(path)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.payload = dict(payload) if payload is not None else None  # fixed extra fields

    def body(self, context: Mapping[str, Any]) -> dict[str, Any]:
        escalation = context.get("escalation")
        if not isinstance(escalation, Mapping):
            raise ValueError("KubernautWebhookNotifier: the context has no 'escalation' to send")
        return {**dict(escalation), **(self.payload or {})}

    def notify(self, context: Any) -> None:
        body = payload_size_ok(self.body(context))
        deadline = time.monotonic() + self.timeout * (self.retries + 1) + 5
        reply = post_json(
            self.conn_id, self.path, body, retries=self.retries, timeout=self.timeout, deadline=deadline
        )
        self.log.info(
            "kubernaut: escalation posted to %s%s: HTTP %s", self.conn_id, self.path, reply["status"]
        )

    async def async_notify(self, context: Any) -> None:
        await asyncio.to_thread(self.notify, context)
