"""The pages on the live stack (airflow standalone with the plugins, PostgreSQL, the sandbox)
after a demo-like run: Airflow's login and permissions guard them (401 without a login, 403
for a user without DAG-run read permission, 403 for a viewer's POST), the launched run
carries its note, and a real browser (Debian's Chromium driven by Playwright) logs in, opens
each page, checks its content, clears a block, and saves screenshots."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import kubernaut.live_stack as live_stack
from kubernaut.demo import DEMO_ALERT, DEMO_TEMPLATE_DAG
from kubernaut.live_stack import LiveStack
from kubernaut.local_stack import AirflowStandalone, write_private
from kubernaut.ui.screenshots import BLOCKED_POD, CHROMIUM, api_client, demo_story, launch_browser, login

USERS = {"viewer": "viewer", "nobody": ""}  # name -> Simple auth manager role ("" = no role)


class _Standalone(AirflowStandalone):
    """The stack's Airflow with two more logins: a viewer, and a user without any role."""

    def environment(self) -> dict[str, str]:
        env = super().environment()
        passwords = self.home / "passwords.json"
        stored = json.loads(passwords.read_text())
        for name in USERS:
            stored[name] = self.secret(f"password-{name}", 12)
        write_private(passwords, json.dumps(stored))
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = ",".join(
            [f"{self.username}:admin", *(f"{n}:{r}" for n, r in USERS.items())]
        )
        return env


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    work = Path(tmp_path_factory.mktemp("live-ui"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(live_stack, "AirflowStandalone", _Standalone)
        live = LiveStack(work / "stack").start()
    try:
        yield live
    finally:
        live.stop()


def _token(stack: LiveStack, user: str) -> str:
    assert stack.airflow is not None
    password = stack.airflow.password if user == "admin" else stack.airflow.secret(f"password-{user}", 12)
    r = httpx.post(
        f"{stack.airflow.url}/auth/token", json={"username": user, "password": password}, timeout=30
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


@pytest.fixture(scope="module")
def demo_run(stack: LiveStack) -> dict[str, Any]:
    assert stack.airflow is not None
    return {"run_id": demo_story(stack), "api": api_client(stack)}


def test_the_run_launched_for_the_alert_carries_its_summary_as_note(demo_run: dict[str, Any]) -> None:
    api: httpx.Client = demo_run["api"]
    note = api.get(f"/dags/{DEMO_TEMPLATE_DAG}/dagRuns/{demo_run['run_id']}").json()["note"]
    assert note == (
        "KubeDeploymentReplicasMismatch on Deployment/demo/web (severity warning)\n\n"
        + DEMO_ALERT["annotations"]["summary"]
    )


def test_pages_need_an_airflow_login_and_dag_run_read_permission(
    stack: LiveStack, demo_run: dict[str, Any]
) -> None:
    assert stack.airflow is not None
    base = f"{stack.airflow.url}/kubernaut"
    pages = ["/ui/remediations", "/ui/remediations/1", "/ui/decisions", "/ui/templates", "/metrics"]
    viewer, nobody = _token(stack, "viewer"), _token(stack, "nobody")
    for page in pages:
        anonymous = httpx.get(base + page, timeout=120)
        assert anonymous.status_code == 401, (page, anonymous.text)
        assert "KubeDeploymentReplicasMismatch" not in anonymous.text
        forged = httpx.get(base + page, headers={"Authorization": "Bearer not.a.jwt"}, timeout=120)
        assert forged.status_code in (401, 403) and "KubeDeploymentReplicasMismatch" not in forged.text
        refused = httpx.get(base + page, headers={"Authorization": f"Bearer {nobody}"}, timeout=120)
        assert refused.status_code == 403, (page, refused.text)
        assert "KubeDeploymentReplicasMismatch" not in refused.text
        by_cookie = httpx.get(base + page, cookies={"_token": nobody}, timeout=120)
        assert by_cookie.status_code == 403, page
    seen = httpx.get(base + "/ui/remediations", cookies={"_token": viewer}, timeout=120)
    assert seen.status_code == 200 and "KubeDeploymentReplicasMismatch" in seen.text
    # A viewer reads but may not clear a block (DAG-run edit permission), even with the form's token.
    form = {
        "alert_name": "KubePodCrashLooping",
        "kind": "Pod",
        "namespace": "demo",
        "name": BLOCKED_POD,
        "csrf": "x",
    }
    post = httpx.post(base + "/ui/blocks/clear", data=form, cookies={"_token": viewer}, timeout=120)
    assert post.status_code == 403
    # The intake's webhook is untouched by the UI's routes.
    assert httpx.get(base + "/healthz", timeout=120).json() == {"status": "ok"}
    plugins = demo_run["api"].get("/plugins").json()["plugins"]
    views = [v for p in plugins if p["name"] == "kubernaut_ui" for v in p["external_views"]]
    assert {v["url_route"] for v in views} == {
        "kubernaut-remediations",
        "kubernaut-decisions",
        "kubernaut-templates",
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_browser(p)
        try:
            yield b
        finally:
            b.close()


def test_in_the_browser(
    stack: LiveStack, demo_run: dict[str, Any], browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert stack.airflow is not None
    shots = Path(tmp_path_factory.mktemp("screenshots"))
    url = stack.airflow.url
    page = login(browser, url, stack.airflow.username, stack.airflow.password)

    page.goto(f"{url}/kubernaut/ui/remediations")
    rows = page.locator("#remediations tbody tr")
    assert rows.count() == 4  # the demo's run and the three earlier failures
    first = rows.nth(0).inner_text()
    assert "KubeDeploymentReplicasMismatch" in first and "Deployment demo/web" in first and "success" in first
    page.screenshot(path=str(shots / "remediations.png"), full_page=True)

    page.select_option("select[name=outcome]", "rolled_back")
    page.click("text=Filter")
    page.wait_for_url("**outcome=rolled_back**")
    assert page.locator("#remediations tbody tr").count() == 3

    page.goto(f"{url}/kubernaut/ui/remediations?template=deployment-replica-mismatch")
    page.locator("#remediations tbody tr").nth(0).locator("a").first.click()
    page.wait_for_selector("#steps")
    assert "Remediation" in page.locator("h1").inner_text() and "success" in page.locator("h1").inner_text()
    assert page.locator("#steps tbody tr").count() >= 2
    assert "KubeDeploymentReplicasMismatch" in page.locator("#alert").inner_text()
    assert "triggered" in page.inner_text("main")
    page.screenshot(path=str(shots / "remediation.png"), full_page=True)

    page.goto(f"{url}/kubernaut/ui/decisions")
    assert page.locator("#decisions tbody tr").count() >= 2
    block = page.locator("#blocks tbody tr").nth(0)
    assert f"Pod demo/{BLOCKED_POD}" in block.inner_text()
    page.screenshot(path=str(shots / "decisions.png"), full_page=True)
    block.locator("input[name=reason]").fill("image fixed by hand")
    block.locator("button").click()
    page.wait_for_selector("#message")
    assert f"cleared by {stack.airflow.username}" in page.locator("#message").inner_text()
    audit = page.locator("#unblocks tbody tr").nth(0).inner_text()
    assert stack.airflow.username in audit and "image fixed by hand" in audit
    assert "No target is blocked" in page.locator("#blocks").inner_text()

    page.goto(f"{url}/kubernaut/ui/templates")
    text = page.locator("#templates").inner_text()
    assert "deployment-replica-mismatch" in text and "pod-crash-recovery" in text
    page.screenshot(path=str(shots / "templates.png"), full_page=True)

    # In Airflow's own UI: the navigation entry opens the page inside the UI.
    page.goto(f"{url}/plugin/kubernaut-remediations")
    frame = page.frame_locator("iframe").first
    assert "KubeDeploymentReplicasMismatch" in frame.locator("#remediations").inner_text(timeout=60000)
    page.screenshot(path=str(shots / "in-airflow.png"))
    for name in ("remediations", "remediation", "decisions", "templates", "in-airflow"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
    keep = Path("/tmp") / "kubernaut-ui-screenshots"
    shutil.rmtree(keep, ignore_errors=True)
    shutil.copytree(shots, keep)
