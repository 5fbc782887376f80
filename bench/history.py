"""Latency of the history writes a task makes (seed target: a state update < 50 ms).

Creates a scratch database on the local PostgreSQL, then times each write kind over many
repetitions and prints p50/p99 beside a same-run baseline: a bare `SELECT 1` round trip
on the same connection. Run: python bench/history.py [--n 500]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import psycopg2

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="kubernaut-bench-"))
DB = f"kubernaut_bench_{secrets.token_hex(3)}"
os.environ["AIRFLOW_CONN_KUBERNAUT_HISTORY"] = f"postgresql://postgres@127.0.0.1:5432/{DB}"

from kubernaut.history import History  # noqa: E402


def admin(sql: str) -> None:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def timed(n: int, fn: Callable[[int], object]) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    n = parser.parse_args().n
    admin(f'CREATE DATABASE "{DB}"')
    try:
        history = History()
        history.migrate()
        alert = {"name": "KubePodCrashLooping", "namespace": "demo", "resource": "web-1", "kind": "Pod"}
        run_id = history.ensure_run("bench", "run-0", "bench", alert, False)
        params = {"namespace": "demo", "deployment": "web", "replicas": 4}
        cases: dict[str, Callable[[int], object]] = {
            "baseline SELECT 1": lambda i: history._query("SELECT 1"),
            "ensure_run": lambda i: history.ensure_run("bench", f"run-{i % 50}", "bench", alert, False),
            "step_started": lambda i: history.step_started(run_id, f"s{i}", "kubernetes/scale", params),
            "save_undo": lambda i: history.save_undo(
                run_id, f"s{i}", "kubernetes/scale", params, {"replicas": 3}
            ),
            "step_finished": lambda i: history.step_finished(run_id, f"s{i}", "success", {"output": params}),
            "finish_run": lambda i: history.finish_run(run_id, "success"),
        }
        timed(50, cases["baseline SELECT 1"])  # warm the connection
        base = statistics.median(timed(n, cases["baseline SELECT 1"]))
        print(f"{'write':20} {'p50 ms':>8} {'p99 ms':>8} {'x baseline p50':>15}   (n={n}, target < 50 ms)")
        worst = 0.0
        for name, fn in cases.items():
            samples = timed(n, fn)
            worst = max(worst, p(samples, 99))
            print(
                f"{name:20} {statistics.median(samples):>8.2f} {p(samples, 99):>8.2f} "
                f"{statistics.median(samples) / base:>15.1f}"
            )
        print(f"worst p99 {worst:.2f} ms: {'within' if worst < 50 else 'ABOVE'} the 50 ms target")
        history.close()
    finally:
        admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
