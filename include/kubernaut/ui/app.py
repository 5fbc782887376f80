"""Remediations in the Airflow UI: server-rendered pages and ``/metrics`` (FastAPI).

Mounted by ``plugins/kubernaut_ui.py`` under ``/kubernaut`` (pages at ``/kubernaut/ui/...``,
metrics at ``/kubernaut/metrics``). Every page is behind Airflow's own login and permissions:
the user comes from Airflow's ``get_user`` (the UI's JWT cookie, or a bearer token), and
reading needs what reading DAG runs needs (Airflow's ``requires_access_dag("GET", RUN)``);
rows are limited to the DAGs the user may read; clearing a block needs DAG-run edit
permission, a CSRF token bound to the user, and a same-origin request. Without a login:
401; without the permission: 403; nothing of the history is shown either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse

from kubernaut.ui import metrics as metrics_text
from kubernaut.ui.pages import environment
from kubernaut.ui.queries import (
    DECISIONS,
    OUTCOMES,
    Block,
    Cursor,
    DecisionFilter,
    Page,
    RunFilter,
    UiQueries,
)

METRICS_TOKEN_ENV = "KUBERNAUT_METRICS_TOKEN_FILE"


@dataclass(frozen=True)
class Viewer:
    """The logged-in Airflow user as the pages need it."""

    name: str
    user: Any  # Airflow's BaseUser


class Access(Protocol):
    """Who is asking and what they may do (production: Airflow's auth manager)."""

    async def viewer(self, request: Request) -> Viewer: ...
    def require_read(self, request: Request, viewer: Viewer) -> None: ...
    def can_read_dag(self, viewer: Viewer, dag_id: str) -> bool: ...
    def can_edit(self, viewer: Viewer) -> bool: ...
    def readable_dags(self, viewer: Viewer) -> set[str] | None: ...
    def csrf_secret(self) -> bytes: ...


class AirflowAccess:
    """Airflow's FastAPI security: ``get_user`` (cookie or bearer JWT; 401 without one, 403 for
    an invalid one) and ``requires_access_dag`` / the auth manager for permissions."""

    async def viewer(self, request: Request) -> Viewer:
        from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

        credentials = await bearer_scheme(request)
        user = await get_user(request, None, credentials)
        return Viewer(name=str(user.get_name()), user=user)

    def require_read(self, request: Request, viewer: Viewer) -> None:
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
        from airflow.api_fastapi.core_api.security import requires_access_dag

        requires_access_dag("GET", DagAccessEntity.RUN)(request, viewer.user)  # 403 when refused

    def _authorized(self, viewer: Viewer, method: str, dag_id: str | None) -> bool:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

        return bool(
            get_auth_manager().is_authorized_dag(
                method=method,  # type: ignore[arg-type]
                access_entity=DagAccessEntity.RUN,
                details=DagDetails(id=dag_id),
                user=viewer.user,
            )
        )

    def can_read_dag(self, viewer: Viewer, dag_id: str) -> bool:
        return self._authorized(viewer, "GET", dag_id)

    def can_edit(self, viewer: Viewer) -> bool:
        return self._authorized(viewer, "PUT", None)

    def readable_dags(self, viewer: Viewer) -> set[str] | None:
        from airflow.api_fastapi.app import get_auth_manager

        return set(get_auth_manager().get_authorized_dag_ids(user=viewer.user, method="GET"))

    def csrf_secret(self) -> bytes:
        from airflow.configuration import conf

        return str(conf.get("api", "secret_key")).encode()


def _metrics_token() -> str:
    path = os.environ.get(METRICS_TOKEN_ENV, "")
    return Path(path).read_text().strip() if path else os.environ.get("KUBERNAUT_METRICS_TOKEN", "")


def _time(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, f"not a time: {value[:40]!r} (use YYYY-MM-DDTHH:MM, UTC)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _cursor(value: str) -> Cursor | None:
    if not value:
        return None
    cursor = Cursor.decode(value)
    if cursor is None:
        raise HTTPException(400, f"not a page cursor: {value[:60]!r}")
    return cursor


def _paging(request: Request, page: Page, after: str, *dropped: str) -> dict[str, str]:
    """A list page's paging: the cursor it shows, the next one, and its filter as a query string
    (without the cursor and the ``dropped`` one-time parameters)."""
    kept = {k: v for k, v in request.query_params.items() if k not in ("after", *dropped) and v}
    return {"after": after, "next": page.next.encode() if page.next else "", "query": urlencode(kept)}


async def _reader(request: Request) -> Viewer:
    """The logged-in user, if they may read DAG runs (401 / 403 otherwise)."""
    guard: Access = request.app.state.access
    viewer = await guard.viewer(request)
    await asyncio.to_thread(guard.require_read, request, viewer)
    return viewer


Reader = Annotated[Viewer, Depends(_reader)]


def create_app(
    queries: UiQueries | None = None,
    access: Access | None = None,
    *,
    page_size: int = 50,
    max_page_size: int = 500,
    metrics_token: Callable[[], str] = _metrics_token,
) -> FastAPI:
    """Nothing is connected or read at creation (the plugin is imported by every Airflow process)."""
    holder: dict[str, UiQueries] = {}
    guard: Access = access or AirflowAccess()
    env = environment()

    def db() -> UiQueries:
        if "q" not in holder:
            holder["q"] = queries or UiQueries(
                os.environ.get("KUBERNAUT_HISTORY_CONN_ID", "kubernaut_history")
            )
        return holder["q"]

    def csrf_token(viewer: Viewer) -> str:
        return hmac.new(
            guard.csrf_secret(), f"kubernaut-ui:{viewer.name}".encode(), hashlib.sha256
        ).hexdigest()

    def render(request: Request, name: str, viewer: Viewer, nav: str, **context: Any) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        html = env.get_template(name).render(root=root, user=viewer.name, nav=nav, **context)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def clamp(limit: int) -> int:
        return max(1, min(limit, max_page_size))

    app = FastAPI(title="Kubernaut remediations UI", version="1", docs_url=None, redoc_url=None)
    app.state.access = guard

    @app.get("/ui", include_in_schema=False)
    @app.get("/ui/", include_in_schema=False)
    async def home(request: Request, viewer: Reader) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/ui/remediations", status_code=303)

    @app.get("/ui/remediations", response_class=HTMLResponse)
    async def remediations(
        request: Request,
        viewer: Reader,
        alert: str = "",
        namespace: str = "",
        template: str = "",
        outcome: str = "",
        since: str = "",
        until: str = "",
        after: str = "",
        limit: int = 0,
    ) -> HTMLResponse:
        f = RunFilter(alert, namespace, template, outcome, _time(since), _time(until))
        cursor = _cursor(after)

        def read() -> tuple[Any, dict[str, list[str]]]:
            dags = guard.readable_dags(viewer)
            return db().remediations(f, limit=clamp(limit or page_size), after=cursor, dag_ids=dags), (
                db().filter_choices()
            )

        page, choices = await asyncio.to_thread(read)
        return render(
            request,
            "remediations",
            viewer,
            "remediations",
            title="Remediations",
            page=page,
            f=f,
            since=since,
            until=until,
            choices=choices,
            outcomes=OUTCOMES,
            **_paging(request, page, after),
        )

    @app.get("/ui/remediations/{run_id}", response_class=HTMLResponse)
    async def remediation(request: Request, run_id: int, viewer: Reader) -> HTMLResponse:
        run = await asyncio.to_thread(db().remediation, run_id)
        if run is None or not await asyncio.to_thread(guard.can_read_dag, viewer, run["dag_id"]):
            raise HTTPException(404, f"no remediation {run_id}")
        alert = await asyncio.to_thread(_alert_as_received, run)
        return render(
            request,
            "remediation",
            viewer,
            "remediations",
            title=f"Remediation {run_id}",
            r=run,
            d=run["decision"],
            alert=alert,
        )

    @app.get("/ui/decisions", response_class=HTMLResponse)
    async def decisions(
        request: Request,
        viewer: Reader,
        alert: str = "",
        namespace: str = "",
        decision: str = "",
        since: str = "",
        until: str = "",
        after: str = "",
        limit: int = 0,
        cleared: int = 0,
    ) -> HTMLResponse:
        f = DecisionFilter(alert, namespace, decision, _time(since), _time(until))
        cursor = _cursor(after)

        def read() -> tuple[Any, list[Block], list[dict[str, Any]], bool]:
            q = db()
            page = q.decisions(f, limit=clamp(limit or page_size), after=cursor)
            return page, q.blocks(), q.unblocks(), guard.can_edit(viewer)

        page, blocks, unblocks, can_clear = await asyncio.to_thread(read)
        return render(
            request,
            "decisions",
            viewer,
            "decisions",
            title="Decisions",
            page=page,
            f=f,
            since=since,
            until=until,
            kinds=DECISIONS,
            blocks=blocks,
            unblocks=unblocks,
            can_clear=can_clear,
            csrf=csrf_token(viewer),
            message=_cleared_message(unblocks, cleared),
            **_paging(request, page, after, "cleared"),
        )

    @app.post("/ui/blocks/clear", include_in_schema=False)
    async def clear_block(
        request: Request,
        viewer: Reader,
        name: Annotated[str, Form()],
        csrf: Annotated[str, Form()] = "",
        alert_name: Annotated[str, Form()] = "",
        kind: Annotated[str, Form()] = "",
        namespace: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
    ) -> RedirectResponse:
        if not await asyncio.to_thread(guard.can_edit, viewer):
            raise HTTPException(403, "clearing a block needs permission to edit DAG runs")
        _same_origin(request)
        if not hmac.compare_digest(csrf, csrf_token(viewer)):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        block = Block(alert_name, kind, namespace, name)
        row_id = await asyncio.to_thread(db().clear_block, block, viewer.name, reason)
        root = request.scope.get("root_path", "")
        return RedirectResponse(f"{root}/ui/decisions?cleared={row_id}", status_code=303)

    @app.get("/ui/templates", response_class=HTMLResponse)
    async def templates(request: Request, viewer: Reader) -> HTMLResponse:
        rows = await asyncio.to_thread(db().templates)
        source = os.environ.get("KUBERNAUT_TEMPLATES_URL", "").rstrip("/")
        for row in rows:
            row["trend_max"] = max([d["runs"] for d in row["trend"]] or [1])
            row["source"] = f"{source}/{row['template']}.yaml" if source else ""
        return render(request, "templates", viewer, "templates", title="Templates", rows=rows)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> PlainTextResponse:
        """Prometheus text format. A scraper authenticates with the metrics token
        (``KUBERNAUT_METRICS_TOKEN_FILE``); a person with their Airflow login."""
        expected = metrics_token()
        given = request.headers.get("authorization", "")
        if not (expected and hmac.compare_digest(given.encode(), f"Bearer {expected}".encode())):
            await _reader(request)
        text = metrics_text.exposition(await asyncio.to_thread(db().metrics))
        return PlainTextResponse(text, media_type=metrics_text.CONTENT_TYPE)

    return app


def _cleared_message(unblocks: list[dict[str, Any]], cleared: int) -> str:
    """The confirmation after a clear, from the audit row itself (nothing echoed from the URL)."""
    for u in unblocks:
        if cleared and u["id"] == cleared:
            where = (
                f"{u['target_namespace']}/{u['target_name']}" if u["target_namespace"] else u["target_name"]
            )
            return f"block of {u['alert_name'] or 'every alert'} on {where} cleared by {u['unblocked_by']}"
    return ""


def _same_origin(request: Request) -> None:
    """A form POST from another site is refused (with the CSRF token: defence in depth)."""
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    if not origin:
        return  # non-browser clients send neither; the CSRF token still applies
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc != host:
        raise HTTPException(403, f"cross-origin request refused (origin {origin[:80]!r})")


def _alert_as_received(run: dict[str, Any]) -> dict[str, Any] | None:
    """The alert as the run received it (its ``conf``), from Airflow's metadata database;
    else the labels the intake recorded."""
    try:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            conf = session.scalar(
                select(DagRun.conf).where(DagRun.dag_id == run["dag_id"], DagRun.run_id == run["dag_run_id"])
            )
        if isinstance(conf, dict) and isinstance(conf.get("alert"), dict):
            return dict(conf["alert"])
    except Exception:  # Airflow's database unreachable here: fall back to the intake's record
        pass
    d = run.get("decision")
    if d:
        return {
            "labels": d.get("labels") or {},
            "status": d.get("alert_status"),
            "fingerprint": d.get("fingerprint"),
        }
    return None
