"""What ``plugins/kubernaut_ui.py`` registers: the routing middleware and the navigation entries."""

from __future__ import annotations

from typing import Any

from starlette.routing import Mount, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from kubernaut.ui.app import create_app

PREFIX = "/kubernaut"
OWN_PATHS = (f"{PREFIX}/ui", f"{PREFIX}/metrics")

UI_VIEWS: list[dict[str, Any]] = [
    {
        "name": title,
        "href": f"kubernaut/ui/{page}",  # relative: works under a base URL with a path
        "url_route": f"kubernaut-{page}",
        "destination": "nav",
        "category": "browse",
    }
    for title, page in (
        ("Remediations", "remediations"),
        ("Alert decisions", "decisions"),
        ("Remediation templates", "templates"),
    )
]

_APP = create_app()  # builds nothing that connects: the history is opened on first use
_ROUTER = Router(routes=[Mount(PREFIX, app=_APP)])


def owns(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in OWN_PATHS)


class KubernautUiRoutes:
    """ASGI middleware: ``/kubernaut/ui/...`` and ``/kubernaut/metrics`` go to the UI app,
    everything else to the api-server as before."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            root = scope.get("root_path", "")
            path = scope["path"]
            if root and path.startswith(root):
                path = path[len(root) :]
            if owns(path):
                await _ROUTER(scope, receive, send)
                return
        await self.app(scope, receive, send)
