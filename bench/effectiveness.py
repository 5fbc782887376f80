"""Assessments waiting at once: worker slots used and memory of the triggerer.

On the live stack (airflow standalone: LocalExecutor, PostgreSQL, the sandbox cluster) with
real Prometheus and Alertmanager as the assessment's connections, starts N runs of a probe
template whose one step only logs and whose assessment is due in 30 minutes. Each remediation
run ends at its ``finalize``, which creates a run of the ``kubernaut_assessment`` DAG; waits
until every assessment run's ``assess_effectiveness`` task is deferred, then prints the
remediation runs' states (all over: none holds its template's ``max_active_runs``), the
assessment task states (running/queued hold a worker slot, deferred do not), the worker slots in
use and the PSS/RSS of the Airflow processes by component beside the idle stack measured in the
same run. The machinery
(memory sampling, slot counting) is bench/concurrency.py's.

    .venv/bin/python bench/effectiveness.py [--runs 100] [--max-active-runs 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from concurrency import sample, slots_in_use
from kubernaut.demo import wait
from kubernaut.live_stack import LiveStack
from kubernaut.local_stack import machine_parallelism
from kubernaut.testing.services import monitoring_stack

REPO = Path(__file__).resolve().parent.parent
DAG = "kubernaut_effectiveness_probe"
ASSESSMENT_DAG = "kubernaut_assessment"
TASK = "assess_effectiveness"
PROBE = """
name: effectiveness-probe
description: One step that only logs; assessed 30 minutes later (bench/effectiveness.py)
alert_types: [EffectivenessProbe]
configuration: {max_active_runs: MAX_ACTIVE_RUNS}
effectiveness: {after: 30m, window: 0s}
steps:
  - name: note
    action: {type: custom, action: log, parameters: {message: "effectiveness probe"}}
"""


def task_states(api: httpx.Client, task_id: str, dag_id: str = DAG) -> Counter[str]:
    states: Counter[str] = Counter()
    offset = 0
    while True:
        page = api.get(
            f"/dags/{dag_id}/dagRuns/~/taskInstances",
            params={"task_id": task_id, "limit": 100, "offset": offset},
        ).json()
        states.update(str(t["state"]) for t in page["task_instances"])
        offset += len(page["task_instances"])
        if not page["task_instances"] or offset >= page["total_entries"]:
            return states


def run_states(api: httpx.Client, dag_id: str) -> Counter[str]:
    states: Counter[str] = Counter()
    offset = 0
    while True:
        page = api.get(f"/dags/{dag_id}/dagRuns", params={"limit": 100, "offset": offset}).json()
        states.update(str(r["state"]) for r in page["dag_runs"])
        offset += len(page["dag_runs"])
        if not page["dag_runs"] or offset >= page["total_entries"]:
            return states


def trigger(api: httpx.Client, body: Mapping[str, object], attempts: int = 60) -> None:
    """POST a run; a loaded API server may time out after creating it (409 on the retry: done),
    and a DAG processor whose parse timed out under load hides the DAG for a while (404)."""
    for attempt in range(attempts):
        try:
            response = api.post(f"/dags/{DAG}/dagRuns", json=body)
        except httpx.TimeoutException:
            response = None
        if response is not None and response.status_code not in (404, 503):
            if response.status_code != 409:
                response.raise_for_status()
            return
        if attempt + 1 == attempts:
            if response is not None:
                print(response.text)
                response.raise_for_status()
            raise TimeoutError("the API server never answered")
        time.sleep(2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for all to be waiting")
    parser.add_argument(
        "--max-active-runs",
        type=int,
        default=1000,
        help="the probe template's (1: one remediation at a time)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubernaut-bench-") as tmp, monitoring_stack() as monitoring:
        os.environ.update(monitoring.connection_env())  # the assessment's Prometheus and Alertmanager
        templates = Path(tmp) / "templates"
        shutil.copytree(REPO / "templates", templates)
        probe = PROBE.replace("MAX_ACTIVE_RUNS", str(args.max_active_runs))
        (templates / "effectiveness-probe.yaml").write_text(probe)
        stack = LiveStack(Path(tmp) / "stack", templates_dir=templates).start()
        try:
            assert stack.airflow is not None and stack.airflow.proc is not None
            root = stack.airflow.proc.pid
            api = stack.airflow.client()
            wait(lambda: api.get(f"/dags/{DAG}").status_code == 200, 180, "the probe DAG to be parsed")
            api.patch(f"/dags/{DAG}", json={"is_paused": False}).raise_for_status()
            time.sleep(20)  # let the stack settle after start-up and parsing
            idle = sample(root)

            started = time.monotonic()
            for i in range(args.runs):
                alert = {
                    "status": "firing",
                    "labels": {"alertname": "EffectivenessProbe", "namespace": "demo", "deployment": "web"},
                    "fingerprint": f"probe-{i}",
                }
                body = {"dag_run_id": f"probe-{i:04d}", "logical_date": None, "conf": {"alert": alert}}
                trigger(api, body)

            def all_waiting() -> Counter[str] | None:
                states = task_states(api, TASK, ASSESSMENT_DAG)
                return states if states.get("deferred", 0) >= args.runs else None

            wait(all_waiting, args.timeout, f"{args.runs} assessments waiting", interval=5)
            took = time.monotonic() - started
            time.sleep(5)
            busy = sample(root)
            states, slots = task_states(api, TASK, ASSESSMENT_DAG), slots_in_use(api)
            finalized = task_states(api, "finalize")
            remediations = run_states(api, DAG)
            paused = api.get(f"/dags/{ASSESSMENT_DAG}").json().get("is_paused")
        finally:
            stack.stop()
    print(
        f"LocalExecutor, parallelism {machine_parallelism()}, PostgreSQL; probe: one log step, assessed after 30m"
    )
    print(f"{args.runs} runs started; every assessment waiting after {took:.0f}s")
    print(f"probe template max_active_runs: {args.max_active_runs}")
    print(f"remediation runs (probe DAG): {dict(sorted(remediations.items()))}")
    print(f"finalize task instances: {dict(sorted(finalized.items()))}")
    print(f"{ASSESSMENT_DAG} paused: {paused}")
    print(f"assess_effectiveness task instances ({ASSESSMENT_DAG}): {dict(sorted(states.items()))}")
    print(f"worker slots in use (running + queued task instances, all DAGs): {slots}")
    print(f"{'':36} {'PSS MiB':>9} {'RSS MiB':>9} {'procs':>6}")
    print(f"{'Airflow processes, idle stack':36} {idle[0]:9.0f} {idle[1]:9.0f} {idle[2]:6d}")
    print(f"{f'Airflow processes, {args.runs} assessing':36} {busy[0]:9.0f} {busy[1]:9.0f} {busy[2]:6d}")
    trig_idle, trig_busy = idle[3].get("triggerer", 0.0), busy[3].get("triggerer", 0.0)
    print(
        f"triggerer PSS: {trig_idle:.0f} MiB idle -> {trig_busy:.0f} MiB with {args.runs} assessments waiting "
        f"({(trig_busy - trig_idle) / args.runs * 1024:.0f} KiB per assessment)"
    )
    print(
        "PSS by component (idle -> assessing): "
        + ", ".join(
            f"{name} {idle[3].get(name, 0):.0f} -> {busy[3].get(name, 0):.0f}"
            for name in sorted(set(idle[3]) | set(busy[3]))
        )
    )


if __name__ == "__main__":
    main()
