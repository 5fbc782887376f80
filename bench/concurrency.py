"""Remediations in flight, all waiting: worker slots used and memory of the Airflow processes.

On the live stack (airflow standalone: LocalExecutor with the machine's parallelism,
PostgreSQL, the sandbox cluster), starts N runs of a probe template whose one step waits for a
rollout the sandbox never completes (its pods crash-loop), waits until every run is waiting,
then prints the runs in flight, their task instances by state (running/queued hold a worker
slot, deferred do not) and the PSS/RSS of all Airflow processes beside the idle stack measured
in the same run before the first run started.

    .venv/bin/python bench/concurrency.py [--runs 100]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

from kubernaut.demo import wait
from kubernaut.live_stack import LiveStack
from kubernaut.local_stack import machine_parallelism

REPO = Path(__file__).resolve().parent.parent
DAG = "kubernaut_concurrency_probe"
STEP = "wait-for-rollout"
PROBE = """
name: concurrency-probe
description: One step that waits for a rollout the sandbox never completes (bench/concurrency.py)
alert_types: [ConcurrencyProbe]
configuration: {timeout: 1h, max_active_runs: 1000}
steps:
  - name: wait-for-rollout
    action: {type: monitoring, action: validate_deployment_ready,
             parameters: {namespace: demo, deployment: "{{ alert.labels.deployment }}", wait_timeout: 50m}}
"""
MiB = 1024 * 1024


def airflow_memory(root: int) -> tuple[float, float, int, dict[str, float]]:
    """PSS and RSS (MiB) of airflow standalone and every process under it, the process count,
    and the PSS by component (scheduler, triggerer, ...)."""
    pss = rss = 0.0
    count = 0
    by_component: Counter[str] = Counter()
    top = psutil.Process(root)
    for process in [top, *top.children(recursive=True)]:
        try:
            info = process.memory_full_info()
            words = process.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        pss, rss, count = pss + info.pss / MiB, rss + info.rss / MiB, count + 1
        line = " ".join(words)
        component = next((name for name, marks in COMPONENTS if any(m in line for m in marks)), "other")
        by_component[component] += info.pss / MiB
    return pss, rss, count, dict(by_component)


# Component name -> what its command line contains (task supervisors count with the workers).
COMPONENTS = (
    ("triggerer", ("triggerer",)),
    ("api-server", ("api_server", "api-server")),
    ("executor workers + tasks", ("airflow worker", "supervisor", "task runner")),
    ("dag-processor", ("dag-processor", "dag_processor")),
    ("scheduler", ("scheduler",)),
    ("standalone", ("standalone",)),
)


def probe_run(alertname: str, run_id: str) -> dict[str, object]:
    """The REST body of a probe run: its alert names demo/web, its fingerprint is the run id."""
    alert = {
        "status": "firing",
        "labels": {"alertname": alertname, "namespace": "demo", "deployment": "web"},
        "fingerprint": run_id,
    }
    return {"dag_run_id": run_id, "logical_date": None, "conf": {"alert": alert}}


def sample(root: int, times: int = 3, pause: float = 2.0) -> tuple[float, float, int, dict[str, float]]:
    """The median of a few samples (memory moves with every scheduler loop)."""
    samples = []
    for i in range(times):
        samples.append(airflow_memory(root))
        if i < times - 1:
            time.sleep(pause)
    pss = statistics.median(s[0] for s in samples)
    middle = min(samples, key=lambda s: abs(s[0] - pss))
    return middle


def task_states(api: httpx.Client) -> Counter[str]:
    states: Counter[str] = Counter()
    offset = 0
    while True:
        page = api.get(
            f"/dags/{DAG}/dagRuns/~/taskInstances", params={"task_id": STEP, "limit": 100, "offset": offset}
        ).json()
        states.update(str(t["state"]) for t in page["task_instances"])
        offset += len(page["task_instances"])
        if not page["task_instances"] or offset >= page["total_entries"]:
            return states


def runs_in_flight(api: httpx.Client) -> int:
    total: int = api.get(f"/dags/{DAG}/dagRuns", params={"state": "running", "limit": 1}).json()[
        "total_entries"
    ]
    return total


def slots_in_use(api: httpx.Client) -> int:
    """Task instances of any DAG holding a worker slot (running or queued)."""
    counts = [
        api.get("/dags/~/dagRuns/~/taskInstances", params={"state": state, "limit": 1}).json()[
            "total_entries"
        ]
        for state in ("running", "queued")
    ]
    return int(sum(counts))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for all runs to be waiting")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubernaut-bench-") as tmp:
        templates = Path(tmp) / "templates"
        shutil.copytree(REPO / "templates", templates)
        (templates / "concurrency-probe.yaml").write_text(PROBE)
        stack = LiveStack(Path(tmp) / "stack", templates_dir=templates).start()
        try:
            assert stack.airflow is not None and stack.airflow.proc is not None and stack.sandbox is not None
            root = stack.airflow.proc.pid
            api = stack.airflow.client()
            wait(lambda: api.get(f"/dags/{DAG}").status_code == 200, 180, "the probe DAG to be parsed")
            api.patch(f"/dags/{DAG}", json={"is_paused": False}).raise_for_status()
            stack.sandbox.inject_fault("crashloop", "demo", "web")  # its rollout never completes
            time.sleep(20)  # let the stack settle after start-up and parsing
            idle = sample(root)

            started = time.monotonic()
            for i in range(args.runs):
                api.post(
                    f"/dags/{DAG}/dagRuns", json=probe_run("ConcurrencyProbe", f"probe-{i:04d}")
                ).raise_for_status()

            def all_waiting() -> Counter[str] | None:
                states = task_states(api)
                return states if states.get("deferred", 0) >= args.runs else None

            wait(all_waiting, args.timeout, f"{args.runs} runs waiting", interval=5)
            took = time.monotonic() - started
            time.sleep(5)
            busy = sample(root)
            report(args.runs, took, idle, busy, runs_in_flight(api), task_states(api), slots_in_use(api))
        finally:
            stack.stop()


def report(
    runs: int,
    took: float,
    idle: tuple[float, float, int, dict[str, float]],
    busy: tuple[float, float, int, dict[str, float]],
    in_flight: int,
    states: Counter[str],
    slots: int,
) -> None:
    print(
        f"LocalExecutor, parallelism {machine_parallelism()}, PostgreSQL; probe: one validate_deployment_ready step"
    )
    print(f"{runs} runs started; all waiting after {took:.0f}s")
    print(f"runs in flight: {in_flight}")
    print(f"waiting step's task instances: {dict(sorted(states.items()))}")
    print(f"worker slots in use (running + queued task instances, all DAGs): {slots}")
    print(f"{'':34} {'PSS MiB':>9} {'RSS MiB':>9} {'procs':>6}")
    print(f"{'Airflow processes, idle stack':34} {idle[0]:9.0f} {idle[1]:9.0f} {idle[2]:6d}")
    print(f"{f'Airflow processes, {runs} waiting':34} {busy[0]:9.0f} {busy[1]:9.0f} {busy[2]:6d}")
    print(f"{'above idle':34} {busy[0] - idle[0]:9.0f} {busy[1] - idle[1]:9.0f} {busy[2] - idle[2]:6d}")
    print(f"above idle per waiting run: {(busy[0] - idle[0]) / runs:.1f} MiB PSS")
    print(
        "PSS by component (idle -> waiting): "
        + ", ".join(
            f"{name} {idle[3].get(name, 0):.0f} -> {busy[3].get(name, 0):.0f}"
            for name in sorted(set(idle[3]) | set(busy[3]))
        )
    )


if __name__ == "__main__":
    main()
