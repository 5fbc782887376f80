"""Remediation steps per minute vs trivial PythonOperator tasks of the same DAG shape, on the
same executor: LocalExecutor, CeleryExecutor with 1 worker, CeleryExecutor with 2 workers
(the production shape of ``kubernaut stack``: every Airflow component its own process,
PostgreSQL, Redis, the sandbox cluster), all in one run.

The remediation DAG comes from a five-step read-only template (each step reads a deployment
from the sandbox over its Kubernetes API, journals in the history database); the trivial DAG
is generated with the very same tasks, edges and trigger rules, each task a no-op
PythonOperator. For each executor and each DAG, R runs are started at once and timed from the
first start to the last task's end; CPU seconds are those of every Airflow process (and the
task processes they reaped) over that window, PostgreSQL, Redis and the sandbox not counted
(their CPU per run is shown apart: they share the same cores).
Both executors preload the task imports before forking task processes (kubernaut.preload: the
LocalExecutor as kubernaut.executors.PreloadingLocalExecutor, Celery through
kubernaut.stack.celery_config); ``--no-preload-too`` also measures Airflow's own.
``--repeat N`` measures each DAG N times per executor, alternating, and shows the medians and
each ratio (the rate moves by a third from one measurement to the next on a shared 2-core
machine); the CPU is also shown per component, and the median duration of a step task.

    .venv/bin/python bench/throughput.py [--runs 20] [--slots 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
PROBE_DAG = "kubernaut_throughput_probe"
TRIVIAL_DAG = "throughput_trivial"
FINALIZE, ASSESS = "finalize", "assess_effectiveness"
DEFAULT_CELERY_CONFIG = "airflow.providers.celery.executors.default_celery.DEFAULT_CELERY_CONFIG"
PROBE = """
name: throughput-probe
description: Five read-only steps (bench/throughput.py)
alert_types: [ThroughputProbe]
configuration: {timeout: 10m, max_active_runs: 1000}
steps:
""" + "".join(
    f"""  - name: read-{i}
    action: {{type: kubernetes, action: get_deployment_status,
             parameters: {{namespace: demo, deployment: "{{{{ alert.labels.deployment }}}}"}}}}
"""
    for i in range(1, 6)
)
TRIVIAL = '''"""Trivial tasks with the shape of {probe} (bench/throughput.py)."""
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def _noop() -> None:
    return None


with DAG("{dag_id}", schedule=None, max_active_runs=1000, tags=["bench"]) as dag:
    tasks = {{
{tasks}
    }}
{edges}
'''


def dag_shape(templates: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(task id, trigger rule) of each task of the probe DAG, and its edges."""
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-throughput-home-"))
    from kubernaut.factory import build_dags

    dag = build_dags(templates, dag_id=PROBE_DAG)[PROBE_DAG]
    # Teardowns (the delayed effectiveness assessment, a deferred wait that holds no worker
    # slot and does not decide the run) are left out: the runs are timed up to `finalize`.
    kept = [t for t in dag.tasks if not getattr(t, "is_teardown", False)]
    names = {t.task_id for t in kept}
    tasks = [(t.task_id, str(getattr(t.trigger_rule, "value", t.trigger_rule))) for t in kept]
    edges = [(t.task_id, d) for t in kept for d in sorted(t.downstream_task_ids) if d in names]
    return tasks, edges


def write_dags(work: Path) -> tuple[Path, Path, int]:
    templates, dags = work / "templates", work / "dags"
    templates.mkdir(parents=True)
    dags.mkdir()
    (templates / "throughput-probe.yaml").write_text(PROBE)
    shutil.copy(REPO / "dags" / "kubernaut_dags.py", dags)
    tasks, edges = dag_shape(templates)
    (dags / "throughput_trivial.py").write_text(
        TRIVIAL.format(
            probe=PROBE_DAG,
            dag_id=TRIVIAL_DAG,
            tasks="\n".join(
                f'        "{tid}": PythonOperator(task_id="{tid}", python_callable=_noop, trigger_rule="{rule}"),'
                for tid, rule in tasks
            ),
            edges="\n".join(f'tasks["{a}"] >> tasks["{b}"]' for a, b in edges),
        )
    )
    # The entry file finds the templates through KUBERNAUT_TEMPLATES_DIR (the stack sets it).
    return templates, dags, len(tasks)


def cpu_by_root(roots: list[int]) -> dict[int, float]:
    """User + system CPU of each process under each of ``roots`` and of the children they
    reaped (a process counted once, under the first root that has it)."""
    totals: dict[int, float] = {}
    seen: set[int] = set()
    for root in roots:
        total = totals.setdefault(root, 0.0)
        try:
            top = psutil.Process(root)
            processes = [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in processes:
            if process.pid in seen:
                continue
            seen.add(process.pid)
            try:
                t = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
        totals[root] = total
    return totals


def beside_roots(stack: Any) -> dict[str, list[int]]:
    """The processes that share the machine's cores with Airflow but are not counted: the
    sandbox cluster (in production, the Kubernetes API server is elsewhere), PostgreSQL (the
    metadata and history databases) and Redis."""
    roots: dict[str, list[int]] = {"sandbox cluster": [], "postgresql": [], "redis": []}
    if stack.sandbox is not None and stack.sandbox.proc is not None:
        roots["sandbox cluster"].append(stack.sandbox.proc.pid)
    for process in psutil.process_iter(["name", "ppid"]):
        name = process.info["name"] or ""
        try:
            parent = psutil.Process(process.info["ppid"]).name() if process.info["ppid"] else ""
        except psutil.Error:
            parent = ""
        if name.startswith("postgres") and not parent.startswith("postgres"):
            roots["postgresql"].append(process.pid)  # the postmaster: its backends are its children
        elif name.startswith("redis-server"):
            roots["redis"].append(process.pid)
    return roots


def cpu_beside(roots: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(cpu_by_root(pids).values()) for name, pids in roots.items()}


@dataclass
class Measure:
    executor: str
    kind: str
    runs: int
    steps: int  # the five step tasks of each run
    tasks: int  # every task that ran (steps, rollback, finalize)
    failed_runs: int
    seconds: float
    cpu: float
    by_component: dict[str, float]  # CPU seconds of each Airflow component (its task processes included)
    step_seconds: float  # median duration of a step task (start to end, as Airflow recorded it)
    beside: dict[str, float]  # CPU seconds of the processes beside Airflow (beside_roots)

    @property
    def per_minute(self) -> float:
        """Steps per minute (each run's five step tasks, up to its `finalize`)."""
        return 60 * self.steps / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_task(self) -> float:
        return self.cpu / self.tasks if self.tasks else 0.0

    @property
    def cpu_per_step(self) -> float:
        """CPU of the whole run (rollback and finalize included) per step."""
        return self.cpu / self.steps if self.steps else 0.0


def median_measure(ms: list[Measure]) -> Measure:
    """One measure of several of the same executor and DAG: the median of each figure (the
    failed runs summed)."""
    med = statistics.median
    components = {name for m in ms for name in m.by_component}
    return Measure(
        ms[0].executor,
        ms[0].kind,
        sum(m.runs for m in ms),
        round(med(m.steps for m in ms)),
        round(med(m.tasks for m in ms)),
        sum(m.failed_runs for m in ms),
        med(m.seconds for m in ms),
        med(m.cpu for m in ms),
        {name: med(m.by_component.get(name, 0.0) for m in ms) for name in components},
        med(m.step_seconds for m in ms),
        {name: med(m.beside.get(name, 0.0) for m in ms) for name in ms[0].beside},
    )


def parse_time(value: str) -> float:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def measure(stack: Any, api: httpx.Client, executor: str, dag: str, kind: str, runs: int) -> Measure:
    from kubernaut.demo import wait

    tag = secrets.token_hex(3)
    names = {c.pid: name for name, c in stack.components.items() if c.running()}
    roots = list(names)
    others = beside_roots(stack)
    cpu0, beside0 = cpu_by_root(roots), cpu_beside(others)
    started = time.time()
    ids = []
    for i in range(runs):
        run_id = f"{kind}-{tag}-{i}"
        alert = {
            "status": "firing",
            "labels": {"alertname": "ThroughputProbe", "namespace": "demo", "deployment": "web"},
            "fingerprint": run_id,
        }
        body = {"dag_run_id": run_id, "logical_date": None, "conf": {"alert": alert}}
        api.post(f"/dags/{dag}/dagRuns", json=body).raise_for_status()
        ids.append(run_id)

    def finalized() -> dict[str, str]:
        """Each run's outcome: the state of its `finalize` task once that is done."""
        body = {"dag_ids": [dag], "task_ids": [FINALIZE], "dag_run_ids": ids, "page_limit": len(ids)}
        found = api.post("/dags/~/dagRuns/~/taskInstances/list", json=body).json()["task_instances"]
        over = ("success", "failed", "upstream_failed")
        return {t["dag_run_id"]: t["state"] for t in found if t["state"] in over}

    def all_finalized() -> dict[str, str] | None:
        found = finalized()
        return found if len(found) == runs else None

    done = wait(all_finalized, 1800, f"{runs} runs of {dag}", interval=1)
    cpu1, beside1 = cpu_by_root(roots), cpu_beside(others)
    beside = {name: beside1[name] - beside0.get(name, 0.0) for name in beside1}
    by_component = {names[pid]: cpu1[pid] - cpu0.get(pid, 0.0) for pid in roots if pid in cpu1}
    cpu = sum(by_component.values())
    tis = []
    for run_id in ids:
        tis += api.get(f"/dags/{dag}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    ran = [
        t
        for t in tis
        if t.get("start_date")
        and t.get("end_date")
        and t["state"] in ("success", "failed")
        and t["task_id"] != ASSESS
    ]
    last = max(parse_time(t["end_date"]) for t in ran)
    failed = sum(1 for v in done.values() if v != "success")
    step_tis = [t for t in ran if t["task_id"].startswith("read-") and t["state"] == "success"]
    durations = [parse_time(t["end_date"]) - parse_time(t["start_date"]) for t in step_tis]
    step_seconds = statistics.median(durations) if durations else 0.0
    return Measure(
        executor,
        kind,
        runs,
        len(step_tis),
        len(ran),
        failed,
        last - started,
        cpu,
        by_component,
        step_seconds,
        beside,
    )


def run_executor(
    name: str,
    work: Path,
    templates: Path,
    dags: Path,
    runs: int,
    slots: int,
    workers: int,
    extra: int,
    preload: bool = True,
    repeat: int = 1,
) -> list[Measure]:
    """Start a stack, measure both DAGs ``repeat`` times, alternating (then again with ``extra``
    more Celery workers)."""
    from kubernaut.demo import wait
    from kubernaut.stack.stack import Stack

    local = workers == 0
    executor = "kubernaut.executors.PreloadingLocalExecutor" if preload else "LocalExecutor"
    env = {"AIRFLOW__CORE__EXECUTOR": executor, "AIRFLOW__CORE__PARALLELISM": str(slots)} if local else {}
    if not preload and not local:  # Airflow's own Celery configuration: every task imports the project again
        env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] = DEFAULT_CELERY_CONFIG
    stack = Stack(
        work / name.replace(" ", "-"),
        workers=workers,
        concurrency=slots,
        redis_db=secrets.randbelow(15) + 1,
        templates_dir=templates,
        dags_folder=dags,
        env_extra=env,
    )
    results = []
    try:
        print(f"[bench] starting the stack: {name} ...", flush=True)
        stack.start()
        api = stack.client()
        for dag in (PROBE_DAG, TRIVIAL_DAG):
            wait(lambda dag=dag: api.get(f"/dags/{dag}").status_code == 200, 300, f"DAG {dag} parsed")
            api.patch(f"/dags/{dag}", json={"is_paused": False}).raise_for_status()
        rounds = [(name, workers)] + (
            [(f"Celery, {workers + extra} workers", workers + extra)] if extra else []
        )
        for label, count in rounds:
            while len(stack.worker_names) < count:
                stack.worker(len(stack.worker_names) + 1).start()
            time.sleep(5 if count > workers else 0)  # let a new worker connect
            measure(stack, api, label, PROBE_DAG, "warmup", 2)
            measure(stack, api, label, TRIVIAL_DAG, "warmup", 2)
            pairs = [(TRIVIAL_DAG, "trivial"), (PROBE_DAG, "kubernaut")] * repeat
            for dag, kind in pairs:
                result = measure(stack, api, label, dag, kind, runs)
                print(
                    f"[bench] {label:<22} {kind:<9} {result.steps} steps ({result.tasks} tasks) in {result.seconds:.1f}s: "
                    f"{result.per_minute:.1f} steps/min, {result.cpu_per_task:.2f} CPU s/task, "
                    f"{result.failed_runs} failed runs",
                    flush=True,
                )
                results.append(result)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        stack.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="runs per DAG and executor (default 20)")
    parser.add_argument(
        "--slots",
        type=int,
        default=4,
        help="task slots: LocalExecutor parallelism = Celery worker concurrency (default 4)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each DAG this many times per executor, alternating; medians are shown (default 1)",
    )
    parser.add_argument(
        "--no-preload-too",
        action="store_true",
        help="also measure Airflow's own LocalExecutor and Celery configuration (1 worker), "
        "without kubernaut.preload's imports before the task processes are forked",
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    try:
        templates, dags, shape = write_dags(work)
        results = run_executor(
            "LocalExecutor", work, templates, dags, args.runs, args.slots, 0, 0, repeat=args.repeat
        )
        results += run_executor(
            "Celery, 1 worker", work, templates, dags, args.runs, args.slots, 1, 1, repeat=args.repeat
        )
        if args.no_preload_too:
            results += run_executor(
                "LocalExecutor, no preload", work, templates, dags, args.runs, args.slots, 0, 0, preload=False
            )
            results += run_executor(
                "Celery, 1 worker, no preload",
                work,
                templates,
                dags,
                args.runs,
                args.slots,
                1,
                0,
                preload=False,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cores = os.cpu_count() or 1
    print(
        f"\n{args.runs} runs x {shape} tasks (5 steps) per DAG, measured {args.repeat} time(s) each "
        f"(medians); {args.slots} task slots per worker (LocalExecutor: parallelism {args.slots}); "
        f"{cores} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"{'executor':<22} {'DAG':<10} {'steps/min':>10} {'CPU s/task':>11} {'CPU s/step':>11} "
        f"{'failed runs':>12} {'vs trivial':>11} {'each time':>18} {'step task s':>12}"
    )
    groups: dict[tuple[str, str], list[Measure]] = {}
    for m in results:
        groups.setdefault((m.executor, m.kind), []).append(m)
    summary = {key: median_measure(ms) for key, ms in groups.items()}
    for (executor, kind), m in summary.items():
        ratio = each = ""
        base = summary[(executor, "trivial")]
        if kind == "kubernaut" and base.per_minute:
            ratio = f"{m.per_minute / base.per_minute:.2f}x"
            pairs = zip(groups[(executor, "trivial")], groups[(executor, kind)], strict=True)
            each = " ".join(f"{k.per_minute / t.per_minute:.2f}" for t, k in pairs if t.per_minute)
        print(
            f"{executor:<22} {kind:<10} {m.per_minute:>10.1f} {m.cpu_per_task:>11.2f} "
            f"{m.cpu_per_step:>11.2f} {m.failed_runs:>12} {ratio:>11} {each:>18} {m.step_seconds:>12.2f}"
        )
    print("\nCPU seconds per task by component (task processes count under the process that forks them)")
    for (executor, kind), m in summary.items():
        parts = ", ".join(
            f"{name} {cpu / max(m.tasks, 1):.3f}" for name, cpu in sorted(m.by_component.items())
        )
        print(f"{executor:<22} {kind:<10} {parts}")
    print(
        "\nCPU seconds per run beside Airflow, not counted above (the same cores: the sandbox "
        "cluster answers the steps' Kubernetes reads here, an API server elsewhere in production)"
    )
    for (executor, kind), m in summary.items():
        parts = ", ".join(f"{name} {cpu / max(args.runs, 1):.3f}" for name, cpu in m.beside.items())
        print(f"{executor:<22} {kind:<10} {parts}")
    results = list(summary.values())
    celery = [
        m
        for m in results
        if m.kind == "kubernaut" and m.executor in ("Celery, 1 worker", "Celery, 2 workers")
    ]
    if celery:

        def workers_of(m: Measure) -> int:
            return 1 if "1 worker" in m.executor else 2

        best = max(celery, key=lambda m: m.per_minute / workers_of(m))
        per_worker = best.per_minute / workers_of(best)
        cpu = max(m.cpu_per_step for m in celery)
        print(
            f"\n1000 steps/min: by measured rate, {1000 / per_worker:.0f} workers of {args.slots} slots "
            f"({per_worker:.0f} steps/min each, {best.executor}, on this shared machine); by CPU, "
            f"{1000 / 60 * cpu:.1f} cores ({cpu:.2f} CPU s per step, Airflow processes only) = "
            f"{1000 / 60 * cpu / cores:.1f} machines of {cores} cores"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
