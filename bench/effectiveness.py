"""Assessments waiting at once: what they cost the scheduler, the triggerer, worker slots and
memory, and how fast a remediation runs beside them.

On the live stack (airflow standalone: LocalExecutor, PostgreSQL, the sandbox cluster) with
real Prometheus and Alertmanager as the assessment's connections, starts N runs of a probe
template whose one step only logs and whose assessment is due in 30 minutes. Each remediation
run ends at its ``finalize``, which creates a run of the ``kubernaut_assessment`` DAG that waits
``queued`` until due (its ``run_after``). With the N waiting, it measures for a minute the CPU
of each Airflow component, the memory, the worker slots in use, and the time a new probe run
takes from its start to its ``finalize``. The baseline, in the same run: the idle stack, and N
more assessment runs created the way they waited before (no ``run_after``: running, their task
deferred in the triggerer until due), measured the same way. The machinery (memory sampling,
slot counting) is bench/concurrency.py's.

    .venv/bin/python bench/effectiveness.py [--runs 100] [--max-active-runs 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from concurrency import COMPONENTS, probe_run, sample, slots_in_use
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


def cpu_by_component(root: int) -> Counter[str]:
    """CPU seconds so far of each Airflow component (its reaped children included)."""
    found: Counter[str] = Counter()
    top = psutil.Process(root)
    for process in [top, *top.children(recursive=True)]:
        try:
            times, line = process.cpu_times(), " ".join(process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        name = next((n for n, marks in COMPONENTS if any(m in line for m in marks)), "other")
        found[name] += times.user + times.system + times.children_user + times.children_system
    return found


def cpu_per_minute(root: int, seconds: float) -> dict[str, float]:
    before = cpu_by_component(root)
    time.sleep(seconds)
    after = cpu_by_component(root)
    return {name: 60 * (after[name] - before.get(name, 0.0)) / seconds for name in after}


def remediation_seconds(api: httpx.Client, tag: str, times: int = 3) -> float:
    """The median time of a new probe run, from its start to its ``finalize``'s success."""
    took = []
    for i in range(times):
        run_id = f"latency-{tag}-{i}"
        started = time.monotonic()
        trigger(api, probe_run("EffectivenessProbe", run_id))
        path = f"/dags/{DAG}/dagRuns/{run_id}/taskInstances/finalize"
        wait(lambda path=path: api.get(path).json().get("state") == "success", 600, run_id, interval=0.2)
        took.append(time.monotonic() - started)
    return statistics.median(took)


def assessment_runs(api: httpx.Client) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    while True:
        page = api.get(f"/dags/{ASSESSMENT_DAG}/dagRuns", params={"limit": 100, "offset": len(runs)}).json()
        runs += page["dag_runs"]
        if not page["dag_runs"] or len(runs) >= page["total_entries"]:
            return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for all to be waiting")
    parser.add_argument("--window", type=float, default=60, help="seconds each CPU measurement lasts")
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
            window = args.window
            measured: dict[str, tuple[dict[str, float], float]] = {}
            measured["idle stack"] = (cpu_per_minute(root, window), remediation_seconds(api, "idle"))

            started = time.monotonic()
            for i in range(args.runs):
                trigger(api, probe_run("EffectivenessProbe", f"probe-{i:04d}"))

            def all_waiting() -> Counter[str] | None:
                states = Counter(
                    r["state"] for r in assessment_runs(api) if r["dag_run_id"].startswith("assess__")
                )
                return states if states.get("queued", 0) >= args.runs else None

            wait(all_waiting, args.timeout, f"{args.runs} assessment runs waiting queued", interval=5)
            took = time.monotonic() - started
            time.sleep(5)
            busy = sample(root)
            states, slots = Counter(r["state"] for r in assessment_runs(api)), slots_in_use(api)
            finalized = task_states(api, "finalize")
            remediations = run_states(api, DAG)
            paused = api.get(f"/dags/{ASSESSMENT_DAG}").json().get("is_paused")
            queued_label = f"{args.runs} waiting queued (run_after)"
            measured[queued_label] = (cpu_per_minute(root, window), remediation_seconds(api, "queued"))

            # The baseline: as many more, created the way they waited before (running now, the
            # task deferred in the triggerer until due), with the conf of a real one.
            model = next(r for r in assessment_runs(api) if r["dag_run_id"].startswith("assess__"))
            conf = api.get(f"/dags/{ASSESSMENT_DAG}/dagRuns/{model['dag_run_id']}").json()["conf"]
            for i in range(args.runs):
                body = {"dag_run_id": f"running-{i:04d}", "logical_date": None, "conf": conf}
                api.post(f"/dags/{ASSESSMENT_DAG}/dagRuns", json=body).raise_for_status()

            def all_deferred() -> Counter[str] | None:
                found = task_states(api, TASK, ASSESSMENT_DAG)
                return found if found.get("deferred", 0) >= args.runs else None

            wait(all_deferred, args.timeout, f"{args.runs} assessment tasks deferred", interval=5)
            time.sleep(5)
            running = sample(root)
            running_label = f"+ {args.runs} waiting running (deferred)"
            measured[running_label] = (cpu_per_minute(root, window), remediation_seconds(api, "running"))
        finally:
            stack.stop()
    print(
        f"LocalExecutor, parallelism {machine_parallelism()}, PostgreSQL; probe: one log step, assessed after 30m"
    )
    print(f"{args.runs} runs started; every assessment run waiting (queued) after {took:.0f}s")
    print(f"probe template max_active_runs: {args.max_active_runs}")
    print(f"remediation runs (probe DAG): {dict(sorted(remediations.items()))}")
    print(f"finalize task instances: {dict(sorted(finalized.items()))}")
    print(f"{ASSESSMENT_DAG} paused: {paused}")
    print(f"{ASSESSMENT_DAG} runs: {dict(sorted(states.items()))}")
    print(f"worker slots in use (running + queued task instances, all DAGs): {slots}")
    names = sorted({n for cpu, _ in measured.values() for n in cpu})
    print(f"\nCPU s per minute by component ({window:.0f} s each), and a new probe run's start to finalize")
    print(f"{'':40} " + " ".join(f"{n[:12]:>12}" for n in names) + f" {'run s':>7}")
    for label, (cpu, seconds) in measured.items():
        print(f"{label:40} " + " ".join(f"{cpu.get(n, 0.0):12.2f}" for n in names) + f" {seconds:7.1f}")
    print(f"\n{'':40} {'PSS MiB':>9} {'RSS MiB':>9} {'procs':>6}")
    print(f"{'Airflow processes, idle stack':40} {idle[0]:9.0f} {idle[1]:9.0f} {idle[2]:6d}")
    print(f"{queued_label:40} {busy[0]:9.0f} {busy[1]:9.0f} {busy[2]:6d}")
    print(f"{running_label:40} {running[0]:9.0f} {running[1]:9.0f} {running[2]:6d}")
    trig = [m[3].get("triggerer", 0.0) for m in (idle, busy, running)]
    print(
        f"triggerer PSS: {trig[0]:.0f} MiB idle, {trig[1]:.0f} with {args.runs} queued, {trig[2]:.0f} with "
        f"{args.runs} more deferred ({(trig[2] - trig[1]) / args.runs * 1024:.0f} KiB per deferred assessment)"
    )


if __name__ == "__main__":
    main()
