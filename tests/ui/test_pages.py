"""The pages over a real (PostgreSQL) history: order, filters, keyset paging, one remediation
(steps, undo journal in undo order, secrets never shown), decisions with blocks and the
audited, CSRF-protected clear, templates, and what reading needs."""

from __future__ import annotations

import re
from html import unescape

import psycopg2
from fastapi.testclient import TestClient

from tests.ui.conftest import (
    BULK_RUNS,
    CIPHERTEXT,
    EDITOR,
    SECRET_VALUE,
    VIEWER,
    FakeAccess,
    Seeded,
    connect,
    hours_ago,
)


def _rows(html: str, table: str) -> list[str]:
    body = html.split(f'<table id="{table}">', 1)[1].split("</table>", 1)[0]
    return [unescape(re.sub(r"<[^>]+>", " ", r)) for r in body.split("<tr>")[2:]]


def _run_links(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'href="/ui/remediations/(\d+)"', html)]


def test_nothing_without_a_login_or_the_read_permission(client: TestClient) -> None:
    for path in ("/ui/remediations", "/ui/remediations/1", "/ui/decisions", "/ui/templates", "/metrics"):
        anonymous = client.get(path)
        assert anonymous.status_code == 401, path
        assert "remediation" not in anonymous.text.lower() or "Not authenticated" in anonymous.text
        refused = client.get(path, headers={"X-User": "mallory:"})
        assert refused.status_code == 403, path


def test_list_is_newest_first_with_target_outcome_duration_and_run_link(
    client: TestClient, ui_db: Seeded
) -> None:
    page = client.get("/ui/remediations", headers=VIEWER)
    assert page.status_code == 200, page.text
    ids = _run_links(page.text)
    assert ids[:2] == [ui_db.rolled_back, ui_db.success]  # 1 min ago, 2 min ago, then the bulk (hours)
    first = _rows(page.text, "remediations")[0]
    assert "KubePodCrashLooping" in first and "Pod shop/cart-0" in first and "pod-crash-recovery" in first
    assert "rolled_back" in first and "2 min 10 s" in first
    assert 'href="/dags/kubernaut_pod_crash_recovery/runs/alert__fp-rolled__1"' in page.text
    assert len(ids) == 50  # one page
    second = _rows(page.text, "remediations")[1]
    assert "effective" in second and "0.92" in second  # the assessment's verdict and score
    assert "\u2013" in first  # not assessed


def test_filters_by_alert_namespace_template_outcome_and_time(client: TestClient, ui_db: Seeded) -> None:
    def ids(**params: str) -> list[int]:
        r = client.get("/ui/remediations", params={**params, "limit": "500"}, headers=VIEWER)
        assert r.status_code == 200, r.text
        return _run_links(r.text)

    assert ids(alert="KubePodCrashLooping") == [ui_db.rolled_back]
    assert ids(template="deployment-replica-mismatch") == [ui_db.success]
    assert len(ids(namespace="even")) == BULK_RUNS // 2
    assert len(ids(outcome="rollback_failed")) == BULK_RUNS // 10
    assert ids(outcome="rolled_back", namespace="shop") == [ui_db.rolled_back]
    assert len(ids(since=hours_ago(10.5))) == 2 + 10  # the two recent runs and bulk hours 1..10
    assert len(ids(until=hours_ago(120.5))) == BULK_RUNS - 120
    assert client.get("/ui/remediations?since=yesterday", headers=VIEWER).status_code == 400


def test_paging_walks_every_row_once_in_order(client: TestClient, ui_db: Seeded) -> None:
    seen: list[int] = []
    url = "/ui/remediations?namespace=odd"
    while url:
        page = client.get(url, headers=VIEWER)
        assert page.status_code == 200
        seen += _run_links(page.text)
        older = re.search(r'id="older" href="\?([^"]+)"', page.text)
        url = f"/ui/remediations?{unescape(older.group(1))}" if older else ""
    odd = [i for n, i in enumerate(ui_db.bulk_ids, 1) if n % 2]
    assert seen == odd  # bulk run n started n hours ago: newest first is ascending n
    assert client.get("/ui/remediations?after=garbage", headers=VIEWER).status_code == 400


def test_rows_of_dags_the_user_may_not_read_are_not_shown(ui_db: Seeded) -> None:
    from kubernaut.ui.app import create_app
    from kubernaut.ui.queries import UiQueries

    hidden = FakeAccess(hidden_dags=frozenset({"kubernaut_deployment_replica_mismatch"}))
    with TestClient(create_app(UiQueries(connect=connect), hidden), raise_server_exceptions=False) as c:
        assert ui_db.success not in _run_links(c.get("/ui/remediations?limit=500", headers=VIEWER).text)
        assert c.get(f"/ui/remediations/{ui_db.success}", headers=VIEWER).status_code == 404
        assert c.get(f"/ui/remediations/{ui_db.rolled_back}", headers=VIEWER).status_code == 200


def test_a_remediation_shows_decision_steps_and_undo_in_undo_order_with_secrets_masked(
    client: TestClient, ui_db: Seeded
) -> None:
    page = client.get(f"/ui/remediations/{ui_db.rolled_back}", headers=VIEWER)
    assert page.status_code == 200, page.text
    text = page.text
    assert "launched run alert__fp-rolled__1" in text  # the intake's decision and reason
    assert "&#34;alertname&#34;: &#34;KubePodCrashLooping&#34;" in text  # the alert (labels) as received
    steps = _rows(text, "steps")
    assert [s.split()[0] for s in steps] == ["patch-secret", "restart-pod", "validate"]
    assert "pod cart-0 not Ready within 2m" in steps[2]
    undo = _rows(text, "undo")
    assert [u.split()[1] for u in undo] == ["restart-pod", "patch-secret"]  # in the order undone
    assert all("applied" in u for u in undo)
    assert "&#34;password&#34;: &#34;***&#34;" in text  # the step's parameters as journaled: redacted
    assert "sealed" in undo[1] and CIPHERTEXT not in text and SECRET_VALUE not in text
    assert "validate failed: pod cart-0 not Ready within 2m" in text
    assert client.get("/ui/remediations/999999", headers=VIEWER).status_code == 404
    assessed = client.get(f"/ui/remediations/{ui_db.success}", headers=VIEWER).text
    component = _rows(assessed, "assessment")
    assert (
        len(component) == 1 and "alert_gone" in component[0] and "the alert no longer fires" in component[0]
    )
    assert "&#34;alertmanager_active&#34;: 0" in assessed and "alert resolved" in assessed
    # the assessment's own DAG run, linked from the remediation
    assert 'id="assessment-run" target="_top" href="/dags/kubernaut_assessment/runs/assess__' in text


def test_decisions_page_lists_every_decision_and_the_blocked_target(client: TestClient) -> None:
    page = client.get("/ui/decisions", headers=VIEWER)
    assert page.status_code == 200
    decisions = _rows(page.text, "decisions")
    assert len(decisions) == 5
    kinds = re.findall(r'<span class="o o-(\w+)">\1</span></td>\s*<td>', page.text)
    assert kinds == ["no_template", "blocked", "duplicate", "triggered", "triggered"]
    assert "no template answers alert &#39;DiskAlmostFull&#39;" in page.text
    blocks = _rows(page.text, "blocks")
    assert len(blocks) == 1 and "Pod shop/api-0" in blocks[0]
    assert "needs DAG run edit permission" in blocks[0]  # a viewer sees no button
    only = client.get("/ui/decisions?decision=duplicate", headers=VIEWER)
    assert len(_rows(only.text, "decisions")) == 1


def test_clearing_a_block_needs_edit_permission_csrf_and_same_origin_and_is_audited(
    client: TestClient,
) -> None:
    form = {"alert_name": "KubePodCrashLooping", "kind": "Pod", "namespace": "shop", "name": "api-0"}
    page = client.get("/ui/decisions", headers=EDITOR).text
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert token and "Clear block" in page
    viewer_token = re.search(
        r'name="csrf" value="([0-9a-f]+)"', client.get("/ui/decisions", headers=VIEWER).text
    )
    assert viewer_token is None  # no form for a viewer

    assert (
        client.post("/ui/blocks/clear", data={**form, "csrf": token.group(1)}, headers=VIEWER).status_code
        == 403
    )
    assert client.post("/ui/blocks/clear", data=form, headers=EDITOR).status_code == 403  # no token
    forged = client.post("/ui/blocks/clear", data={**form, "csrf": "0" * 64}, headers=EDITOR)
    assert forged.status_code == 403
    cross = client.post(
        "/ui/blocks/clear",
        data={**form, "csrf": token.group(1)},
        headers={**EDITOR, "Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname=connect().info.dbname) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM kubernaut_unblocks")
            assert cur.fetchone() == (0,)

    done = client.post(
        "/ui/blocks/clear",
        data={**form, "csrf": token.group(1), "reason": "fixed the image"},
        headers={**EDITOR, "Origin": "http://ui.test"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    after = client.get(done.headers["location"], headers=EDITOR).text
    assert "cleared by ed" in after
    assert _rows(after, "blocks")[0].strip().startswith("No target is blocked")
    audit = _rows(after, "unblocks")
    assert (
        len(audit) == 1
        and " ed " in audit[0]
        and "fixed the image" in audit[0]
        and "Pod shop/api-0" in audit[0]
    )


def test_templates_page_counts_runs_success_rate_and_last_failure(client: TestClient, ui_db: Seeded) -> None:
    page = client.get("/ui/templates", headers=VIEWER)
    assert page.status_code == 200
    rows = {r.split()[0]: r for r in _rows(page.text, "templates")}
    assert set(rows) == {"deployment-replica-mismatch", "pod-crash-recovery", "rollout-restart"}
    assert "KubePodCrashLooping" in rows["pod-crash-recovery"] and " 0 %" in rows["pod-crash-recovery"]
    restart = rows["rollout-restart"]
    assert f" {BULK_RUNS} " in restart and " 90 %" in restart and "rollback_failed" in restart
    assert rows["deployment-replica-mismatch"].split().count("100") == 2  # success and effective rate
    assert "\u2013" in rows["rollout-restart"]  # none assessed: no effective rate
