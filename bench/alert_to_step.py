"""Alertmanager -> first remediation task running, on the live stack (plugin on airflow
standalone with LocalExecutor/PostgreSQL, real Alertmanager), p50/p95 over a series of
alerts; beside it the Alertmanager-only delivery time (Alertmanager -> a bare local
webhook) measured in the same run with the same timers.

    .venv/bin/python bench/alert_to_step.py [--alerts 8]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from kubernaut.demo import wait
from kubernaut.live_stack import Alertmanager, LiveStack, am_alert
from kubernaut.local_stack import free_port

DAG = "kubernaut_pod_diagnostics"  # read-only template: distinct pods never hit cooldown/busy


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def parse(ts: str) -> float:
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bare_webhook_delivery(workdir: Path, n: int) -> list[float]:
    arrived: dict[str, float] = {}

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
            for key in list(pending):
                if key in body and key not in arrived:
                    arrived[key] = time.time()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    pending: dict[str, float] = {}
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    am = Alertmanager(workdir, f"http://127.0.0.1:{server.server_address[1]}/").start()
    try:
        for i in range(n):
            key = f"bare-{i}-{time.time_ns()}"
            pending[key] = time.time()
            am.post_alerts([am_alert({"alertname": "BareDelivery", "pod": key}, now_iso())])
            wait(lambda k=key: k in arrived, 30, "bare delivery", interval=0.01)
        return [arrived[k] - pending[k] for k in pending]
    finally:
        am.stop()
        server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubernaut-bench-") as tmp:
        stack = LiveStack(Path(tmp)).start()
        try:
            assert stack.airflow is not None and stack.alertmanager is not None
            api = stack.airflow.client()
            wait(lambda: api.get(f"/dags/{DAG}").status_code == 200, 120, "DAGs to be parsed")
            api.patch(f"/dags/{DAG}", json={"is_paused": False}).raise_for_status()
            latencies: list[float] = []
            for i in range(args.alerts):
                pod = f"bench-{i}-{time.time_ns() % 10**6}"
                sent = time.time()
                stack.alertmanager.post_alerts(
                    [
                        am_alert(
                            {"alertname": "KubeContainerWaiting", "namespace": "demo", "pod": pod}, now_iso()
                        )
                    ]
                )

                def first_task_started(p: str = pod) -> float | None:
                    for run in api.get(f"/dags/{DAG}/dagRuns").json()["dag_runs"]:
                        if run["conf"].get("alert", {}).get("labels", {}).get("pod") != p:
                            continue
                        tis = api.get(f"/dags/{DAG}/dagRuns/{run['dag_run_id']}/taskInstances").json()
                        starts = [
                            parse(t["start_date"]) for t in tis["task_instances"] if t.get("start_date")
                        ]
                        return min(starts) if starts else None
                    return None

                started = wait(first_task_started, 120, "the first task to run", interval=0.2)
                latencies.append(started - sent)
                wait(
                    lambda: (
                        not [
                            r
                            for r in api.get(
                                f"/dags/{DAG}/dagRuns", params={"state": ["queued", "running"]}
                            ).json()["dag_runs"]
                        ]
                    ),
                    120,
                    "the run to finish",
                    interval=0.5,
                )
            bare = bare_webhook_delivery(Path(tmp) / "bare-am", args.alerts)
        finally:
            stack.stop()
    print(f"{args.alerts} alerts; Alertmanager group_wait 1s, group_interval 5s; LocalExecutor + PostgreSQL")
    print(f"{'':52} {'p50 s':>7} {'p95 s':>7} {'mean s':>7}")
    for label, xs in (
        ("Alertmanager -> bare local webhook (delivery only)", bare),
        ("Alertmanager -> first remediation task running", latencies),
    ):
        print(f"{label:52} {statistics.median(xs):7.2f} {pct(xs, 0.95):7.2f} {statistics.mean(xs):7.2f}")


if __name__ == "__main__":
    main()
