"""Screenshots of the pages on the live stack after a demo-like run (docs/img/*.png), and the
story the browser tests use.

    .venv/bin/python -m kubernaut.ui.screenshots [--out docs/img]

Needs what the browser tests need: PostgreSQL, Debian's ``chromium`` and ``playwright`` (the
Python package only: its own browser download is never used).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg2

from kubernaut.demo import (
    DEMO_ALERT,
    DEMO_TEMPLATE_DAG,
    deployment_health,
    now_rfc3339,
    wait,
    webhook_payload,
)
from kubernaut.live_stack import LiveStack

CHROMIUM = "/usr/bin/chromium"
CRASH_DAG = "kubernaut_pod_crash_recovery"
BLOCKED_POD = "api-0"
PAGES = ("remediations", "remediation", "decisions", "templates", "in-airflow")


def demo_story(stack: LiveStack) -> str:
    """demo/web crash-loops, its alert goes to the intake, the run fixes it (returns its run id);
    and a pod whose remediation failed three times before is answered ``blocked``."""
    assert stack.airflow is not None and stack.sandbox is not None
    sandbox = stack.sandbox
    api = api_client(stack)
    for dag in (DEMO_TEMPLATE_DAG, CRASH_DAG):
        wait(lambda d=dag: _get(api, f"/dags/{d}") is not None, 240, f"DAG {dag} to be parsed", 2)
        wait(_tolerant(partial(_unpause, api, dag)), 120, f"DAG {dag} to be unpaused", 2)
    wait(_tolerant(lambda: deployment_health(sandbox, "demo", "web")[1] == 3), 180, "demo/web to be Ready", 2)
    sandbox.inject_fault("crashloop", "demo", "web")
    wait(_tolerant(lambda: deployment_health(sandbox, "demo", "web")[2] > 0), 180, "the fault to show", 2)
    decision = _deliver(stack, {**DEMO_ALERT, "startsAt": now_rfc3339()})
    if decision["decision"] != "triggered":
        raise RuntimeError(f"the intake did not launch a run: {decision}")
    run_id = str(decision["dag_run_id"])
    run = f"/dags/{DEMO_TEMPLATE_DAG}/dagRuns/{run_id}"
    state = wait(lambda: _finished(_get(api, run)), 600, "the run", 2)
    if state != "success":
        raise RuntimeError(f"the demo run ended {state}")

    with psycopg2.connect(stack.history_uri()) as conn, conn.cursor() as cur:
        for i in range(3):
            cur.execute(
                """INSERT INTO kubernaut_runs (dag_id, dag_run_id, template, alert_name, target_kind,
                       target_namespace, target_name, status, detail, started_at, finished_at)
                   VALUES (%s, %s, 'pod-crash-recovery', 'KubePodCrashLooping', 'Pod', 'demo', %s,
                           'rolled_back', 'validation failed', now() - make_interval(mins => %s),
                           now() - make_interval(mins => %s) + interval '90 seconds')""",
                (CRASH_DAG, f"earlier-{i}", BLOCKED_POD, 30 - i, 30 - i),
            )
    crash = {
        "status": "firing",
        "labels": {
            "alertname": "KubePodCrashLooping",
            "namespace": "demo",
            "pod": BLOCKED_POD,
            "severity": "critical",
        },
        "annotations": {"summary": f"Pod demo/{BLOCKED_POD} is crash looping"},
        "fingerprint": "b10c4ed0000000aa",
        "startsAt": now_rfc3339(),
    }
    blocked = _deliver(stack, crash)
    if blocked["decision"] != "blocked":
        raise RuntimeError(f"expected the intake to answer blocked: {blocked}")
    return run_id


def _deliver(stack: LiveStack, alert: dict[str, Any], attempts: int = 3) -> dict[str, Any]:
    """Post the alert as Alertmanager does, retrying as it does when the (loaded) server is slow
    to answer; a retry of a delivery that did launch is answered ``duplicate`` for the same run."""
    for attempt in range(attempts):
        try:
            r = httpx.post(
                stack.webhook_url,
                json=webhook_payload(alert),
                headers={"Authorization": f"Bearer {stack.token}"},
                timeout=120,
            )
        except httpx.TimeoutException:
            if attempt == attempts - 1:
                raise
            continue
        if r.status_code == 503 and attempt < attempts - 1:
            continue
        r.raise_for_status()
        decision: dict[str, Any] = r.json()["decisions"][0]
        if attempt and decision["decision"] == "duplicate":
            decision["decision"] = "triggered"  # our earlier, unanswered delivery launched it
        return decision
    raise AssertionError("unreachable")


def _unpause(api: httpx.Client, dag: str) -> bool:
    return api.patch(f"/dags/{dag}", json={"is_paused": False}).status_code == 200


def api_client(stack: LiveStack) -> httpx.Client:
    """The stack's REST API client, patient with a loaded machine."""
    assert stack.airflow is not None
    api: httpx.Client = wait(_tolerant(stack.airflow.client), 180, "an Airflow API token", 2)
    api.timeout = httpx.Timeout(120)
    return api


def _tolerant(predicate: Callable[[], Any]) -> Callable[[], Any]:
    """A poll that reads a slow answer (a loaded machine) as "not yet" instead of failing."""

    def poll() -> Any:
        try:
            return predicate()
        except httpx.HTTPError:
            return None

    return poll


def _get(api: Any, path: str) -> dict[str, Any] | None:
    """GET from Airflow's API; None while it is not there or the (loaded) server is slow to answer."""
    try:
        r = api.get(path)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def _finished(run: dict[str, Any] | None) -> str | None:
    state = (run or {}).get("state")
    return str(state) if state in ("success", "failed") else None


def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
    )


def login(browser: Any, url: str, user: str, password: str) -> Any:
    """Log in through Airflow's own login form; the UI's cookie then opens the plugin's pages."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(60000)
    page.goto(f"{url}/auth/login/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/auth/login" not in u, timeout=60000)
    return page


def capture(page: Any, url: str, out: Path) -> list[Path]:
    """One screenshot per page (the remediation: the demo's run)."""
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    for name, path in (
        ("remediations", "/kubernaut/ui/remediations"),
        ("decisions", "/kubernaut/ui/decisions"),
        ("templates", "/kubernaut/ui/templates"),
    ):
        page.goto(url + path)
        shots.append(out / f"{name}.png")
        page.screenshot(path=str(shots[-1]), full_page=True)
    page.goto(f"{url}/kubernaut/ui/remediations?template=deployment-replica-mismatch")
    page.locator("#remediations tbody tr").nth(0).locator("a").first.click()
    page.wait_for_selector("#steps")
    shots.append(out / "remediation.png")
    page.screenshot(path=str(shots[-1]), full_page=True)
    page.goto(f"{url}/plugin/kubernaut-remediations")
    page.frame_locator("iframe").first.locator("#remediations").wait_for()
    shots.append(out / "in-airflow.png")
    page.screenshot(path=str(shots[-1]))
    return shots


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate docs/img screenshots of the Kubernaut UI pages.")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[3] / "docs" / "img")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="kubernaut-shots-") as work:
        stack = LiveStack(Path(work) / "stack").start()
        try:
            demo_story(stack)
            assert stack.airflow is not None
            with sync_playwright() as p:
                browser = launch_browser(p)
                try:
                    page = login(browser, stack.airflow.url, stack.airflow.username, stack.airflow.password)
                    for shot in capture(page, stack.airflow.url, args.out):
                        print(f"wrote {shot}")
                finally:
                    browser.close()
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
