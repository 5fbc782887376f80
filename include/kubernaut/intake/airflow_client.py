"""Launch runs through the Airflow REST API, asynchronously (``httpx.AsyncClient``).

Inside the api-server the intake calls the very server it runs in: a caller that waited in
one of its worker threads would take a thread Airflow needs to answer (anyio's pool has 40),
so a burst of webhooks starved the api-server. Here no thread is held while waiting, and at
most ``max_concurrent`` requests are in flight, leaving the api-server's threads to the UI,
the execution API and the scheduler.

A JWT from ``POST /auth/token`` is cached until shortly before it expires (one fetch per
burst); a 401 refreshes it once. Connection errors and 429/5xx are retried with exponential
backoff, then reported as ``AirflowUnavailable`` so the webhook answers 503 and Alertmanager
retries later; ``uncertain`` on it says whether a request may have reached Airflow (then a
POST may have created the run). A DAG's paused flag is cached for ``paused_ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio.to_thread
import httpx

log = logging.getLogger(__name__)
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
NOT_PROCESSED_STATUS = frozenset({429, 503})  # refused before doing anything: nothing was created
TOKEN_MARGIN_SECONDS = 30.0


class AirflowUnavailable(RuntimeError):
    """Airflow cannot be reached or refuses us for now: try again later (503).

    ``uncertain``: a request may have been processed (a timeout after sending, a 500): a
    POST may have created the run even though no answer said so.
    """

    def __init__(self, message: str, *, uncertain: bool = False) -> None:
        super().__init__(message)
        self.uncertain = uncertain


class Triggered(StrEnum):
    CREATED = "created"  # 200/201
    EXISTED = "existed"  # 409 and no earlier attempt of ours could have created it
    EXISTED_AFTER_RETRY = "existed_after_retry"  # 409 after an attempt with unknown outcome: ours


@dataclass(frozen=True)
class AirflowSettings:
    url: str
    username: str
    password: str
    timeout: float = 10.0
    attempts: int = 4
    backoff: float = 0.25
    max_concurrent: int = 4
    paused_ttl: float = 5.0

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


class _LoopState:
    """What must belong to one event loop: the HTTP client, the token lock, the gate."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, settings: AirflowSettings, verify: ssl.SSLContext | bool
    ) -> None:
        self.loop = loop
        limits = httpx.Limits(max_connections=settings.max_concurrent + 1)  # +1: a token fetch
        self.client = httpx.AsyncClient(
            base_url=settings.url, timeout=settings.timeout, limits=limits, verify=verify
        )
        self.token_lock = asyncio.Lock()
        self.paused_lock = asyncio.Lock()
        self.gate = asyncio.Semaphore(settings.max_concurrent)


class AirflowGateway:
    """The calls the intake needs; one instance per process, usable from any event loop."""

    def __init__(
        self,
        settings: AirflowSettings,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._clock = clock
        self._state: _LoopState | None = None
        self._tls: ssl.SSLContext | None = None
        self._token: str | None = None
        self._token_expires = 0.0
        self._paused: dict[str, tuple[float, bool]] = {}

    async def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        if self._state is None or self._state.loop is not loop:
            verify: ssl.SSLContext | bool = False  # plain http: no TLS, no CA bundle to load
            if self.settings.url.startswith("https:"):
                if self._tls is None:  # loading the CA bundle takes ~0.1 s: not in the event loop
                    self._tls = await anyio.to_thread.run_sync(httpx.create_ssl_context)
                verify = self._tls
            if self._state is None or self._state.loop is not loop:
                self._state = _LoopState(loop, self.settings, verify)
        return self._state

    async def warm(self) -> None:
        """The HTTP client (and TLS context) of this event loop, ready before the first alert."""
        await self._loop_state()

    # -- token ------------------------------------------------------------------------------
    async def _fetch_token(self, client: httpx.AsyncClient) -> str:
        try:
            response = await client.post(
                "/auth/token", json={"username": self.settings.username, "password": self.settings.password}
            )
        except httpx.HTTPError as exc:
            raise _Transient(f"POST /auth/token: {exc!r}") from exc
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

    async def _bearer(self, state: _LoopState, stale: str | None = None) -> str:
        """The cached token; a new one if it expires soon or is ``stale`` (refused with 401)."""
        async with state.token_lock:  # a burst of webhooks fetches one token, not one each
            token = self._token
            if token is None or token == stale or time.time() > self._token_expires - TOKEN_MARGIN_SECONDS:
                token = await self._fetch_token(state.client)
                self._token = token
                self._token_expires = token_expiry(token) or time.time() + 300
            return token

    # -- calls ------------------------------------------------------------------------------
    async def _call(
        self, method: str, path: str, *, json_body: Any = None, attempts: int | None = None
    ) -> tuple[int, bytes, bool]:
        """Status, body, and whether an earlier attempt may have been processed unanswered."""
        state = await self._loop_state()
        attempts = attempts or self.settings.attempts
        what = f"{method} {path}"
        uncertain = False
        refused: str | None = None
        last = ""
        attempt = 0
        async with state.gate:
            while attempt < attempts:
                try:
                    token = await self._bearer(state, stale=refused)
                    response = await state.client.request(
                        method, f"/api/v2{path}", json=json_body, headers={"Authorization": f"Bearer {token}"}
                    )
                    status = response.status_code
                    if status == 401 and refused is None:
                        refused = token  # expired or revoked: one fresh token, not counted as an attempt
                        continue
                    if status not in TRANSIENT_STATUS:
                        return status, response.content, uncertain
                    uncertain = uncertain or status not in NOT_PROCESSED_STATUS
                    last = f"{what}: HTTP {status}"
                except _Transient as exc:
                    last = f"{what}: {exc}"
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                    last = f"{what}: {exc!r}"  # never sent
                except httpx.HTTPError as exc:
                    uncertain = True  # sent, no answer: Airflow may still process it
                    last = f"{what}: {exc!r}"
                attempt += 1
                if attempt < attempts:
                    delay = self.settings.backoff * 2 ** (attempt - 1)
                    await self._sleep(delay * random.uniform(0.5, 1.5))  # jitter: webhooks arrive in bursts
        raise AirflowUnavailable(
            f"Airflow unreachable after {attempts} attempts ({last})", uncertain=uncertain
        )

    async def dag_paused(self, dag_id: str) -> bool:
        """Whether the DAG is paused (cached briefly); a DAG Airflow does not know is 'unavailable'."""
        cached = self._cached_paused(dag_id)
        if cached is not None:
            return cached
        async with (await self._loop_state()).paused_lock:  # a burst asks Airflow once, not once per alert
            cached = self._cached_paused(dag_id)
            if cached is not None:
                return cached
            path = f"/dags/{quote(dag_id, safe='')}"
            status, body, _ = await self._call("GET", path)
            if status != 200:
                raise self._unexpected(f"GET {path}", status, body)
            try:
                paused = bool(json.loads(body)["is_paused"])
            except (ValueError, KeyError, TypeError) as exc:
                raise AirflowUnavailable(f"GET {path}: unexpected answer: {exc}") from exc
            self._paused[dag_id] = (self._clock(), paused)
            return paused

    def _cached_paused(self, dag_id: str) -> bool | None:
        cached = self._paused.get(dag_id)
        if cached is not None and self._clock() - cached[0] < self.settings.paused_ttl:
            return cached[1]
        return None

    async def run_exists(self, dag_id: str, run_id: str, *, attempts: int | None = None) -> bool:
        path = f"/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
        status, body, _ = await self._call("GET", path, attempts=attempts)
        if status in (200, 404):
            return status == 200
        raise self._unexpected(f"GET {path}", status, body)

    async def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> Triggered:
        """Create the run with this id (idempotent: a second POST answers 409)."""
        path = f"/dags/{quote(dag_id, safe='')}/dagRuns"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        note = run_note(conf.get("alert"))
        if note:
            body["note"] = note  # the Grid view reads on its own: alert, target, severity, summary
        status, answer, uncertain = await self._call("POST", path, json_body=body)
        if status in (200, 201):
            return Triggered.CREATED
        if status == 409:
            return Triggered.EXISTED_AFTER_RETRY if uncertain else Triggered.EXISTED
        raise self._unexpected(f"POST {path}", status, answer, uncertain=uncertain)

    @staticmethod
    def _unexpected(what: str, status: int, body: bytes, *, uncertain: bool = False) -> AirflowUnavailable:
        # 401 after a refresh, 403, 404, 400: misconfiguration (role, DAG not parsed). Log loudly;
        # the webhook answers 503 so Alertmanager retries once it is fixed.
        detail = body[:300].decode("utf-8", "replace")
        log.error("kubernaut intake: %s -> HTTP %s %s", what, status, detail)
        return AirflowUnavailable(f"{what} -> HTTP {status} {detail}".strip(), uncertain=uncertain)


NOTE_LIMIT = 1000  # Airflow keeps a run note of up to 1000 characters


def run_note(alert: Any) -> str:
    """The note of a run launched for ``alert`` (``conf["alert"]``): alert name, target,
    severity and the ``summary`` annotation, as plain text (alert content is data)."""
    if not isinstance(alert, Mapping):
        return ""
    from kubernaut.alert import NO_TARGET, derive_target

    labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
    annotations = alert.get("annotations") or {}
    target = derive_target(labels)
    where = str(target) if target is not NO_TARGET else "no target"
    if labels.get("cluster"):
        where = f"{labels['cluster']}: {where}"
    name, severity = labels.get("alertname") or "(no alertname)", labels.get("severity") or "none"
    head = f"{name} on {where} (severity {severity})"
    summary = str(annotations.get("summary") or "").strip() if isinstance(annotations, Mapping) else ""
    text = f"{head}\n\n{summary}" if summary else head
    return text if len(text) <= NOTE_LIMIT else text[: NOTE_LIMIT - 1] + "…"


class _Transient(Exception):
    """A failure worth retrying (network, 5xx) while fetching the token."""
