"""Launch runs through the Airflow REST API with the official ``apache-airflow-client``.

A JWT from ``POST /auth/token`` is cached until shortly before it expires; a 401 refreshes
it once. Connection errors and 429/5xx are retried with exponential backoff, then reported
as ``AirflowUnavailable`` so the webhook answers 503 and Alertmanager retries later.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import urllib3
from airflow_client.client import ApiClient, Configuration
from airflow_client.client.api.dag_api import DAGApi
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody

log = logging.getLogger(__name__)
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
TOKEN_MARGIN_SECONDS = 30.0


class AirflowUnavailable(RuntimeError):
    """Airflow cannot be reached or refuses us for now: try again later (503)."""


@dataclass(frozen=True)
class AirflowSettings:
    url: str
    username: str
    password: str
    timeout: float = 10.0
    attempts: int = 4
    backoff: float = 0.25

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AirflowSettings:
        """KUBERNAUT_AIRFLOW_URL (default: [api] base_url), _USERNAME, _PASSWORD or _PASSWORD_FILE."""
        env = os.environ if env is None else env
        url = env.get("KUBERNAUT_AIRFLOW_URL") or env.get("AIRFLOW__API__BASE_URL") or "http://127.0.0.1:8080"
        password = env.get("KUBERNAUT_AIRFLOW_PASSWORD", "")
        if not password and env.get("KUBERNAUT_AIRFLOW_PASSWORD_FILE"):
            password = Path(env["KUBERNAUT_AIRFLOW_PASSWORD_FILE"]).read_text().strip()
        return cls(url=url.rstrip("/"), username=env.get("KUBERNAUT_AIRFLOW_USERNAME", ""), password=password)


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (not verified: only used to refresh in time)."""
    try:
        body = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        exp = claims.get("exp") if isinstance(claims, dict) else None
        return float(exp) if isinstance(exp, int | float) else None
    except (IndexError, ValueError, binascii.Error, UnicodeDecodeError):
        return None


class AirflowGateway:
    """The three calls the intake needs; thread-safe (one instance per process)."""

    def __init__(self, settings: AirflowSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        # urllib3 must not retry on its own: retries (and their backoff) are ours.
        self._api = ApiClient(Configuration(host=settings.url, retries=0))
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()

    # -- token ------------------------------------------------------------------------------
    def _fetch_token(self) -> str:
        try:
            response = httpx.post(
                f"{self.settings.url}/auth/token",
                json={"username": self.settings.username, "password": self.settings.password},
                timeout=self.settings.timeout,
            )
        except httpx.HTTPError as exc:
            raise _Transient(f"POST /auth/token: {exc}") from exc
        if response.status_code in TRANSIENT_STATUS:
            raise _Transient(f"POST /auth/token answered {response.status_code}")
        if response.status_code not in (200, 201):
            raise AirflowUnavailable(
                f"Airflow refused the intake's credentials (POST /auth/token -> {response.status_code}); "
                "check KUBERNAUT_AIRFLOW_USERNAME/KUBERNAUT_AIRFLOW_PASSWORD"
            )
        try:
            token = response.json()["access_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise _Transient(f"POST /auth/token: unexpected answer: {exc}") from exc
        return str(token)

    def _bearer(self, refresh: bool = False) -> str:
        with self._lock:
            if refresh or self._token is None or time.time() > self._token_expires - TOKEN_MARGIN_SECONDS:
                token = self._fetch_token()
                self._token = token
                self._token_expires = token_expiry(token) or time.time() + 300
            return self._token

    # -- calls ------------------------------------------------------------------------------
    def _call(self, what: str, call: Callable[[dict[str, str]], Any]) -> tuple[int, bytes]:
        """Status and body of one request (bodies are not deserialized into the client's models: we
        only need a few fields, and a model mismatch must never turn a created run into an error)."""
        refreshed = False
        last = ""
        attempt = 0
        while attempt < self.settings.attempts:
            try:
                response = call({"Authorization": f"Bearer {self._bearer(refresh=refreshed)}"})
                status, body = int(response.status), bytes(response.data or b"")
                if status == 401 and not refreshed:
                    refreshed = True  # expired or revoked: one fresh token, not counted as an attempt
                    continue
                if status not in TRANSIENT_STATUS:
                    return status, body
                last = f"{what}: HTTP {status}"
            except (_Transient, urllib3.exceptions.HTTPError, OSError) as exc:
                last = f"{what}: {exc}"
            attempt += 1
            if attempt < self.settings.attempts:
                delay = self.settings.backoff * 2 ** (attempt - 1)
                self._sleep(delay * random.uniform(0.5, 1.5))  # jitter: webhooks arrive in bursts
        raise AirflowUnavailable(f"Airflow unreachable after {self.settings.attempts} attempts ({last})")

    def dag_paused(self, dag_id: str) -> bool:
        """Whether the DAG is paused; a DAG Airflow does not know is 'unavailable' (not parsed yet?)."""
        what = f"GET /dags/{dag_id}"
        status, body = self._call(
            what,
            lambda headers: DAGApi(self._api).get_dag_without_preload_content(
                dag_id, _headers=headers, _request_timeout=self.settings.timeout
            ),
        )
        if status != 200:
            raise self._unexpected(what, status, body)
        try:
            return bool(json.loads(body)["is_paused"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AirflowUnavailable(f"{what}: unexpected answer: {exc}") from exc

    def run_exists(self, dag_id: str, run_id: str) -> bool:
        what = f"GET /dags/{dag_id}/dagRuns/{run_id}"
        status, body = self._call(
            what,
            lambda headers: DagRunApi(self._api).get_dag_run_without_preload_content(
                dag_id, run_id, _headers=headers, _request_timeout=self.settings.timeout
            ),
        )
        if status in (200, 404):
            return status == 200
        raise self._unexpected(what, status, body)

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> bool:
        """Create the run; True if created, False if it already existed (409)."""
        what = f"POST /dags/{dag_id}/dagRuns"
        body = TriggerDAGRunPostBody(dag_run_id=run_id, logical_date=None, conf=conf)
        status, answer = self._call(
            what,
            lambda headers: DagRunApi(self._api).trigger_dag_run_without_preload_content(
                dag_id, body, _headers=headers, _request_timeout=self.settings.timeout
            ),
        )
        if status in (200, 201, 409):
            return status != 409
        raise self._unexpected(what, status, answer)

    @staticmethod
    def _unexpected(what: str, status: int, body: bytes) -> AirflowUnavailable:
        # 401 after a refresh, 403, 404, 400: misconfiguration (role, DAG not parsed). Log loudly;
        # the webhook answers 503 so Alertmanager retries once it is fixed.
        detail = body[:300].decode("utf-8", "replace")
        log.error("kubernaut intake: %s -> HTTP %s %s", what, status, detail)
        return AirflowUnavailable(f"{what} -> HTTP {status} {detail}".strip())


class _Transient(Exception):
    """A failure worth retrying (network, 5xx) while fetching the token."""
