"""Response time of the Remediations list (and Decisions) at 100,000 history rows.

Fills a fresh history database (migrated: indexes of migration 6 included) with N runs and N
alert decisions over 90 days, then times GET requests through the UI app (ASGI, in-process,
auth replaced by a stand-in that admits everyone) and prints p50/p95 next to baselines
measured in the same run: a trivial endpoint of the same app (the request path without the
history), and the list's SQL alone. ``--without-ui-indexes`` drops migration 6's indexes
first, to see what they buy.

    .venv/bin/python bench/ui_list.py [--rows 100000] [--requests 40]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

import psycopg2
from fastapi import Request
from fastapi.testclient import TestClient

from kubernaut.history import History
from kubernaut.ui.app import Viewer, create_app
from kubernaut.ui.queries import RunFilter, UiQueries

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
UI_INDEXES = (
    "kubernaut_runs_started",
    "kubernaut_runs_status",
    "kubernaut_runs_namespace",
    "kubernaut_decisions_received",
    "kubernaut_decisions_decision",
)


class Everyone:
    async def viewer(self, request: Request) -> Viewer:
        return Viewer("bench", None)

    def require_read(self, request: Request, viewer: Viewer) -> None:
        return None

    def can_read_dag(self, viewer: Viewer, dag_id: str) -> bool:
        return True

    def can_edit(self, viewer: Viewer) -> bool:
        return True

    def readable_dags(self, viewer: Viewer) -> set[str] | None:
        return None

    def csrf_secret(self) -> bytes:
        return b"bench"


def admin(sql: str) -> None:
    conn = psycopg2.connect(dbname="postgres", **PG)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def fill(db: str, rows: int) -> None:
    conn = psycopg2.connect(dbname=db, **PG)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO kubernaut_runs (dag_id, dag_run_id, template, alert_name, alert_fingerprint,
                target_kind, target_namespace, target_name, status, detail, started_at, finished_at)
            SELECT 'kubernaut_t' || (i %% 12), 'alert__' || i, 'template-' || (i %% 12), 'Alert' || (i %% 40),
                   md5(i::text), 'Deployment', 'ns-' || (i %% 200), 'app-' || (i %% 5000),
                   (ARRAY['success','success','success','success','success','success','rolled_back',
                          'not_needed','declined','partially_rolled_back','rollback_failed',
                          'success'])[1 + i %% 12],
                   'detail', now() - make_interval(secs => i * 77), now() - make_interval(secs => i * 77) + interval '95 seconds'
              FROM generate_series(1, %s) i
            """,
            (rows,),
        )
        cur.execute(
            """
            INSERT INTO kubernaut_steps (run_id, step, action, parameters, result, status, attempts,
                                         started_at, finished_at, duration_ms)
            SELECT id, 'step-' || s, 'action_' || s, '{"namespace": "ns"}', '{"ok": true}', 'success', 1,
                   started_at, started_at + interval '20 seconds', 20000
              FROM kubernaut_runs, generate_series(1, 3) s
            """
        )
        cur.execute(
            """
            INSERT INTO kubernaut_alert_decisions (received_at, fingerprint, alert_name, alert_status, decision,
                reason, template, target_kind, target_namespace, target_name)
            SELECT now() - make_interval(secs => i * 77), md5(i::text), 'Alert' || (i %% 40), 'firing',
                   (ARRAY['triggered','duplicate','cooldown','busy','no_template','resolved'])[1 + i %% 6],
                   'why', 'template-' || (i %% 12), 'Deployment', 'ns-' || (i %% 200), 'app-' || (i %% 5000)
              FROM generate_series(1, %s) i
            """,
            (rows,),
        )
        cur.execute("ANALYZE")
    conn.close()


def timed(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    fn()  # warm
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--without-ui-indexes", action="store_true")
    args = ap.parse_args(argv)

    db = f"kubernaut_bench_ui_{secrets.token_hex(3)}"
    admin(f'CREATE DATABASE "{db}"')
    try:

        def connect() -> Any:
            return psycopg2.connect(dbname=db, **PG)

        History(connect=connect).migrate()
        t0 = time.perf_counter()
        fill(db, args.rows)
        print(
            f"filled {args.rows:,} runs (+{3 * args.rows:,} steps) and {args.rows:,} decisions in {time.perf_counter() - t0:.1f} s"
        )
        if args.without_ui_indexes:
            conn = connect()
            conn.autocommit = True
            with conn.cursor() as cur:
                for name in UI_INDEXES:
                    cur.execute(f"DROP INDEX {name}")
            conn.close()
            print("migration 6 indexes dropped")

        queries = UiQueries(connect=connect)
        client = TestClient(create_app(queries, Everyone()))
        first = client.get("/ui/remediations")
        assert first.status_code == 200 and first.text.count('href="/ui/remediations/') >= 50, first.text[
            :500
        ]
        older = first.text.split('id="older" href="?', 1)[1].split('"', 1)[0].replace("&amp;", "&")

        def deep_cursor() -> str:
            page = queries.remediations(RunFilter(), limit=500)
            for _ in range(100):  # ~50,000 rows down
                assert page.next is not None
                page = queries.remediations(RunFilter(), limit=500, after=page.next)
            assert page.next is not None
            return page.next.encode()

        deep = deep_cursor()
        cases: list[tuple[str, Callable[[], Any]]] = [
            (
                "baseline: trivial endpoint (GET /ui -> 303)",
                lambda: client.get("/ui", follow_redirects=False),
            ),
            ("baseline: list SQL alone, no filter", lambda: queries.remediations(RunFilter(), limit=50)),
            ("list, no filter (page 1)", lambda: client.get("/ui/remediations")),
            ("list, page 2 (cursor)", lambda: client.get(f"/ui/remediations?{older}")),
            ("list, ~row 50,000 (cursor)", lambda: client.get("/ui/remediations", params={"after": deep})),
            ("list, template filter", lambda: client.get("/ui/remediations?template=template-3")),
            ("list, namespace filter", lambda: client.get("/ui/remediations?namespace=ns-17")),
            (
                "list, alert + outcome",
                lambda: client.get("/ui/remediations?alert=Alert7&outcome=rolled_back"),
            ),
            ("list, outcome=rollback_failed", lambda: client.get("/ui/remediations?outcome=rollback_failed")),
            (
                "list, last 24 h",
                lambda: client.get(
                    "/ui/remediations?since="
                    + time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 86400))
                ),
            ),
            ("list, 500 rows per page", lambda: client.get("/ui/remediations?limit=500")),
            ("decisions page (+ blocks)", lambda: client.get("/ui/decisions")),
            ("templates page (aggregates)", lambda: client.get("/ui/templates")),
            ("one remediation", lambda: client.get("/ui/remediations/5000")),
            (
                "metrics (all aggregates)",
                lambda: client.get("/metrics", headers={"Authorization": "Bearer x"}),
            ),
        ]
        print(f"\n{args.rows:,} rows; {args.requests} requests each; milliseconds")
        print(f"{'case':46} {'p50':>8} {'p95':>8}")
        for name, fn in cases:
            p50, p95 = timed(fn, args.requests)
            print(f"{name:46} {p50:8.1f} {p95:8.1f}")
        queries.close()
    finally:
        admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
