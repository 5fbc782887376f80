"""The Alertmanager webhook receiver (FastAPI): ``POST /alerts`` and ``GET /healthz``.

Mounted by the Airflow plugin under ``/kubernaut`` and by ``kubernaut serve`` at the same
path. Order of checks: token (401), size (413), JSON (400), shape (422); only then does
anything touch Airflow or the history. Unreachable Airflow/history -> 503 + Retry-After.
Both endpoints are ``async``: they hold none of the server's worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from kubernaut.history import HistoryUnavailable
from kubernaut.intake.airflow_client import AirflowUnavailable
from kubernaut.intake.decisions import AlertDecision, Decision
from kubernaut.intake.payload import PayloadError, WebhookPayload, parse_payload
from kubernaut.intake.service import IntakeService
from kubernaut.intake.settings import IntakeSettings

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = "30"
_NOTEWORTHY = frozenset(
    {Decision.TRIGGERED, Decision.BLOCKED, Decision.PAUSED, Decision.PROTECTED, Decision.NO_CLUSTER}
)


class _TooLarge(Exception):
    pass


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": message, **extra}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():  # counted as it arrives: Content-Length may be absent or lie
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _is_storage_error(exc: Exception) -> bool:
    """History failures after connecting surface as driver errors (psycopg2/psycopg)."""
    driver = type(exc).__module__.split(".")[0]
    return isinstance(exc, HistoryUnavailable) or driver in ("psycopg2", "psycopg")


def create_app(service: IntakeService | None = None) -> FastAPI:
    """Build the receiver; the service (and with it every dependency) is created on first use,
    or by the warm-up when the server that mounts the app starts (the api-server runs mounted
    apps' lifespans; importing the plugin, as every Airflow component does, builds nothing)."""
    holder: dict[str, IntakeService] = {}

    def current() -> IntakeService:
        if "service" not in holder:
            holder["service"] = service or IntakeService(IntakeSettings.from_env())
        return holder["service"]

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        warm = asyncio.create_task(_warm_up(current))  # in the background: startup is not delayed
        try:
            yield
        finally:
            warm.cancel()

    app = FastAPI(
        title="Kubernaut alert intake",
        description="Alertmanager webhook receiver that launches remediation DAG runs.",
        version="1",
        lifespan=lifespan,
    )

    @app.get("/healthz", summary="Liveness; no Airflow or database access")
    async def healthz() -> dict[str, str]:  # async: answers even when every worker thread is busy
        return {"status": "ok"}

    @app.post(
        "/alerts",
        summary="Alertmanager webhook (version 4)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": WebhookPayload.model_json_schema()}},
            }
        },
        responses={
            200: {"description": "One decision per alert"},
            400: {"description": "Not JSON"},
            401: {"description": "Missing or wrong bearer token"},
            413: {"description": "Body larger than the limit"},
            422: {"description": "JSON but not a webhook payload; errors name the fields"},
            503: {"description": "Airflow or the history database unreachable: retry later"},
        },
    )
    async def receive_alerts(request: Request) -> JSONResponse:
        svc = current()
        if not svc.settings.token.accepts(request.headers.get("authorization")):
            return _error(401, "missing or invalid bearer token")
        try:
            body = await _read_body(request, svc.settings.max_body_bytes)
        except _TooLarge:
            return _error(413, f"payload larger than {svc.settings.max_body_bytes} bytes")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:  # ValueError covers bad UTF-8 and bad JSON
            return _error(400, f"body is not valid JSON: {str(exc)[:200]}")
        try:
            payload = parse_payload(data)
        except PayloadError as exc:
            return _error(422, f"not an Alertmanager webhook payload: {exc}", errors=exc.problems)

        decided: list[AlertDecision] = []
        try:
            # Inside the api-server we call that same server: Airflow calls are async and the
            # history runs on the intake's own small pool, so none of the server's threads waits.
            await svc.decide_all(payload, decided.append)
        except AirflowUnavailable as exc:
            log.warning("kubernaut intake: %s", exc)
            return _unavailable(f"Airflow unavailable: {exc}", decided)
        except Exception as exc:
            if not _is_storage_error(exc):
                raise
            log.warning("kubernaut intake: history unavailable: %s", exc)
            return _unavailable(f"history database unavailable: {exc}", decided)
        for d in decided:
            # Launches and what needs a person at INFO; the bulk of a storm (duplicate, busy,
            # resolved ...) at DEBUG: every decision is in the history anyway.
            level = logging.INFO if d.decision in _NOTEWORTHY else logging.DEBUG
            log.log(
                level, "kubernaut intake: %s %s -> %s: %s", d.alertname, d.fingerprint, d.decision, d.reason
            )
        return JSONResponse(_body(decided))

    return app


async def _warm_up(current: Callable[[], IntakeService]) -> None:
    """Templates, configuration and a history connection ready before the first alert (~1 s)."""
    try:
        await current().warm_up()
    except Exception as exc:  # the first alert tries again and answers 503 if it still fails
        log.warning("kubernaut intake: warm-up failed: %s", exc)


def _body(decided: list[AlertDecision]) -> dict[str, Any]:
    return {
        "decisions": [d.to_dict() for d in decided],
        "summary": dict(Counter(str(d.decision) for d in decided)),
    }


def _unavailable(message: str, decided: list[AlertDecision]) -> JSONResponse:
    return JSONResponse(
        {"detail": message, **_body(decided)},
        status_code=503,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )
