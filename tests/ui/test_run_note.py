"""The note a launched run carries (alert name, target, severity, summary), sent in the
dagRuns POST; and the plugin's routing: its own paths to the UI app, everything else on."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI, Request

from kubernaut.intake.airflow_client import NOTE_LIMIT, AirflowGateway, AirflowSettings, Triggered, run_note
from kubernaut.ui.plugin import KubernautUiRoutes, owns
from tests.ui.conftest import serve


def test_note_names_alert_target_severity_and_summary() -> None:
    alert = {
        "labels": {
            "alertname": "KubePodCrashLooping",
            "namespace": "shop",
            "pod": "cart-0",
            "severity": "critical",
        },
        "annotations": {"summary": "Pod shop/cart-0 is crash looping", "description": "long text"},
    }
    assert (
        run_note(alert)
        == "KubePodCrashLooping on Pod/shop/cart-0 (severity critical)\n\nPod shop/cart-0 is crash looping"
    )
    node = {"labels": {"alertname": "KubeNodeNotReady", "node": "n1", "cluster": "eu-1"}}
    assert run_note(node) == "KubeNodeNotReady on eu-1: Node/n1 (severity none)"
    assert run_note({"labels": {"alertname": "X"}}) == "X on no target (severity none)"
    long = run_note({"labels": {"alertname": "A"}, "annotations": {"summary": "{{ 7*7 }} " * 500}})
    assert len(long) == NOTE_LIMIT and long.endswith("…") and "{{ 7*7 }}" in long  # data, not rendered
    assert run_note(None) == ""


def test_trigger_posts_the_note_with_the_run() -> None:
    received: list[dict[str, Any]] = []
    airflow = FastAPI()

    @airflow.post("/auth/token")
    async def token() -> dict[str, str]:
        return {"access_token": "t"}

    @airflow.post("/api/v2/dags/{dag_id}/dagRuns")
    async def trigger(dag_id: str, request: Request) -> dict[str, str]:
        received.append(await request.json())
        return {"dag_id": dag_id}

    alert = {
        "labels": {"alertname": "KubeDeploymentReplicasMismatch", "namespace": "demo", "deployment": "web"}
    }
    with serve(airflow) as where:
        gateway = AirflowGateway(AirflowSettings(url=f"http://{where}", username="u", password="p"))
        assert asyncio.run(gateway.trigger("kubernaut_x", "run-1", {"alert": alert})) is Triggered.CREATED
    assert received[0]["note"] == "KubeDeploymentReplicasMismatch on Deployment/demo/web (severity none)"
    assert received[0]["conf"] == {"alert": alert}


def test_the_plugin_routes_only_its_own_paths() -> None:
    assert owns("/kubernaut/ui") and owns("/kubernaut/ui/remediations/3") and owns("/kubernaut/metrics")
    assert not owns("/kubernaut/alerts") and not owns("/kubernaut/uix") and not owns("/kubernaut/healthz")

    inner = FastAPI()

    @inner.get("/{path:path}")
    async def rest(path: str) -> dict[str, str]:
        return {"served_by": "api-server", "path": path}

    async def go(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=KubernautUiRoutes(inner))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.get(path)

    assert asyncio.run(go("/kubernaut/alerts")).json() == {
        "served_by": "api-server",
        "path": "kubernaut/alerts",
    }
    ui = asyncio.run(go("/kubernaut/ui/remediations"))
    assert ui.status_code == 401  # the UI app answered: Airflow's login is required (none here)
    metrics = asyncio.run(go("/kubernaut/metrics"))
    assert metrics.status_code == 401
