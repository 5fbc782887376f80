"""Parse time of the DAG files, as Airflow pays it: each measurement in a fresh process.

The same N DAGs (N = 10, 100, 1000), each of the same 5-step shape, three ways, measured in
the same run and interleaved so that a busy machine slows them alike:

- this project: ``dags/kubernaut_dags.py`` over N generated templates (each DAG gets its
  5 step tasks plus the ``rollback`` and ``finalize`` tasks every remediation has), with its
  cache of validated templates (templates/cache.py) as the DAG processor finds it after its
  previous parse ("this project": one unmeasured parse runs right before each measured one),
  and with the cache off ("uncached": every template loaded and checked, as after an edit of
  every file);
- with ``--compare DIR`` (a copy of the repository's ``include`` and ``dags`` at another
  version), the same for that version ("compare"), for a before/after in one run;
- dag-factory (pinned, installed by this script into a venv of its own that sees this
  project's packages, so the same Airflow): one entry file calling ``load_yaml_dags`` over N
  YAML files, EmptyOperator tasks;
- plain: a Python DAG file building the same N DAGs with EmptyOperators (the floor), and the
  same with the 2 extra tasks (``plain+2``: what Airflow costs for this project's 7 tasks).

"processor": a fresh process that has imported what Airflow's DAG processor has loaded
before it forks a parse (``airflow.dag_processing.processor`` and, as
``[dag_processor] parsing_pre_import_modules`` does, the ``airflow.*`` modules the file
imports) and frozen that heap out of the garbage collector's sight (``gc.freeze()``, as the
DAG processor manager does before its parsing loop), then times ``DagBag(file)``. The error
file (``dags/kubernaut_template_errors.py``), which the DAG processor parses too, is timed the
same way and shown on its own.

"task": a worker's parse for one task: a fresh process with the task runner imported and
Airflow's parsing context set to one dag_id, timing ``DagBag(file)``; this project with N
templates present vs a plain file holding that one DAG.

The figure is the CPU time of the parsing process (on an idle machine the same as the wall
time; it stays comparable when other work shares the machine), the median of --repeat runs;
the wall time is shown beside it. Bytecode is cached (as in a deployed Airflow) under the
run's own directory, and one unmeasured warm-up round comes first.

Run: python bench/parse.py [--sizes 10 100 1000] [--repeat 3] [--no-dag-factory] [--compare DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENTRY = REPO / "dags" / "kubernaut_dags.py"
ERRORS_ENTRY = REPO / "dags" / "kubernaut_template_errors.py"
DAG_FACTORY = "dag-factory==1.1.0"
BENCH_VENV_ENV = "KUBERNAUT_BENCH_VENV"
TASK_DAG_INDEX = 7  # the template a worker parses for (present at every size above 7)
MARK = "@@parse-bench@@ "

# Goals (issue #9): at 1000 templates within 1.5x of the plain floor; 3x faster than
# dag-factory at 100 and 1000.
FLOOR_RATIO_GOAL, FLOOR_GOAL_AT = 1.5, 1000
DAG_FACTORY_SPEEDUP_GOAL, DAG_FACTORY_GOAL_AT = 3.0, (100, 1000)

TEMPLATE = """\
name: generated-{i}
description: generated template {i}
alert_types: [Generated{i}, {{alertname: KubePodCrashLooping, matchers: ['namespace="ns{i}"']}}]
parameters:
  replicas: {{type: integer, default: 3}}
steps:
  - name: assess
    action: {{type: kubernetes, action: get_pod_status,
             parameters: {{namespace: "{{{{ alert.namespace }}}}", pod: "{{{{ alert.resource }}}}"}}}}
  - name: logs
    parallel: true
    action: {{type: kubernetes, action: get_pod_logs,
             parameters: {{namespace: "{{{{ alert.namespace }}}}", pod: "{{{{ alert.resource }}}}"}}}}
  - name: restart
    conditions: ["not steps['assess'].ready"]
    action: {{type: kubernetes, action: restart_pod,
             parameters: {{namespace: "{{{{ alert.namespace }}}}", pod: "{{{{ alert.resource }}}}"}}}}
    rollback: {{action: rollback_pod_restart}}
  - name: scale
    action: {{type: kubernetes, action: scale_deployment,
             parameters: {{namespace: "{{{{ alert.namespace }}}}", deployment: web, replicas: "{{{{ params.replicas }}}}"}}}}
  - name: validate
    action: {{type: monitoring, action: validate_pod_health,
             parameters: {{namespace: "{{{{ alert.namespace }}}}", pod: "{{{{ alert.resource }}}}", wait_timeout: 2m}}}}
"""

EMPTY = "airflow.providers.standard.operators.empty.EmptyOperator"
DAG_FACTORY_TEMPLATE = f"""\
generated_{{i}}:
  description: generated template {{i}}
  schedule: null
  catchup: false
  tasks:
    assess: {{{{operator: {EMPTY}}}}}
    logs: {{{{operator: {EMPTY}}}}}
    restart: {{{{operator: {EMPTY}, dependencies: [assess, logs]}}}}
    scale: {{{{operator: {EMPTY}, dependencies: [restart]}}}}
    validate: {{{{operator: {EMPTY}, dependencies: [scale]}}}}
"""

DAG_FACTORY_ENTRY = '''\
"""dag-factory's entry file (an Airflow DAG file): one DAG per YAML file in {folder}."""

from dagfactory import load_yaml_dags

load_yaml_dags(globals_dict=globals(), dags_folder={folder!r})
'''

PLAIN = '''\
"""Plain Airflow DAG file: {count} DAGs of the same 5-step shape{extra_doc}."""

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

for i in {indices}:
    with DAG(f"plain_{{i}}", schedule=None, catchup=False) as dag:
        assess, logs, restart, scale, validate = (
            EmptyOperator(task_id=t) for t in ("assess", "logs", "restart", "scale", "validate")
        )
        [assess, logs] >> restart >> scale >> validate{extra}
    globals()[dag.dag_id] = dag
'''
PLUS_TWO = """
        rollback = EmptyOperator(task_id="rollback", trigger_rule="all_done")
        validate >> rollback >> EmptyOperator(task_id="finalize", trigger_rule="all_done")"""
CACHE_ENV = "KUBERNAUT_TEMPLATE_CACHE"

# Runs in the fresh process: what is imported before the clock starts is what that Airflow
# process has already loaded when it parses the file.
CHILD = r"""
import importlib, json, re, sys, time
mark, path, mode, dag_id = sys.argv[1:5]
if mode == "processor":
    import gc
    import airflow.dag_processing.processor
    from airflow.utils.file import iter_airflow_imports
    for module in iter_airflow_imports(path):
        try:
            importlib.import_module(module)
        except Exception:
            pass
    gc.freeze()
else:
    import airflow.sdk.execution_time.task_runner
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions._internal.dag_parsing_context import _airflow_parsing_context_manager
wall, cpu = time.perf_counter(), time.process_time()
if mode == "task":
    with _airflow_parsing_context_manager(dag_id=dag_id, task_id="assess"):
        bag = DagBag(dag_folder=path, safe_mode=False, load_op_links=False)
else:
    bag = DagBag(dag_folder=path, load_op_links=False)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(mark + json.dumps({
    "wall": wall, "cpu": cpu, "dags": sum(1 for d in bag.dags if re.search(r"_[0-9]+$", d)),
    "has": dag_id in bag.dags,
    "tasks": len(bag.dags[dag_id].tasks) if dag_id in bag.dags else 0,
    "errors": {k: v[-2000:] for k, v in bag.import_errors.items()},
}))
"""


@dataclass(frozen=True)
class Case:
    key: tuple[str, int]
    python: str
    path: Path
    mode: str  # processor | task
    expect_dags: (
        int | None
    )  # the generated DAGs (ids ending _<i>; not e.g. kubernaut_assessment); None: not checked
    dag_id: str = ""
    env: tuple[tuple[str, str], ...] = ()
    # Parse once unmeasured right before: the cache of validated templates is then as the DAG
    # processor's previous parse left it, even when an edit of kubernaut's code elsewhere on
    # this machine has just invalidated it (in a deployment the code does not change).
    warm: bool = False


@dataclass(frozen=True)
class Sample:
    cpu: float
    wall: float


class BenchError(RuntimeError):
    pass


def run_case(case: Case, base_env: dict[str, str]) -> Sample:
    if case.warm:
        run_case(dataclasses.replace(case, warm=False), base_env)
    proc = subprocess.run(
        [case.python, "-c", CHILD, MARK, str(case.path), case.mode, case.dag_id],
        env={**base_env, **dict(case.env)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    label = f"{case.key[0]} {case.key[1]}"
    if proc.returncode != 0 or not lines:
        raise BenchError(f"{label}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1][len(MARK) :])
    if result["errors"]:
        raise BenchError(f"{label}: import errors: {result['errors']}")
    if case.expect_dags is not None and result["dags"] != case.expect_dags:
        raise BenchError(f"{label}: expected {case.expect_dags} DAGs, got {result['dags']}")
    if case.dag_id and not (result["has"] and result["tasks"] >= 5):
        raise BenchError(f"{label}: DAG {case.dag_id} missing or incomplete: {result}")
    return Sample(float(result["cpu"]), float(result["wall"]))


def dag_factory_python() -> str:
    """A venv with dag-factory on top of this interpreter's packages (the same Airflow)."""
    venv = Path(os.environ.get(BENCH_VENV_ENV) or Path(tempfile.gettempdir()) / "kubernaut-bench-venv")
    python = venv / "bin" / "python"
    version = DAG_FACTORY.split("==")[1]
    check = [str(python), "-c", "import importlib.metadata as m; print(m.version('dag-factory'))"]
    if python.exists():
        found = subprocess.run(check, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == version:
            return str(python)
    print(f"installing {DAG_FACTORY} into {venv} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    base = sysconfig.get_paths()["purelib"]  # this project's environment: Airflow and all
    (Path(purelib) / "kubernaut-bench-base.pth").write_text(f"import site; site.addsitedir({base!r})\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", DAG_FACTORY], check=True)
    return str(python)


def cases_for(work: Path, count: int, factory_python: str | None, compare: Path | None) -> list[Case]:
    ours = work / f"templates-{count}"
    ours.mkdir()
    for i in range(count):
        (ours / f"generated-{i}.yaml").write_text(TEMPLATE.format(i=i))
    plain, plain7 = work / f"plain_{count}.py", work / f"plain_plus_two_{count}.py"
    plain.write_text(PLAIN.format(count=count, indices=f"range({count})", extra="", extra_doc=""))
    plain7.write_text(
        PLAIN.format(
            count=count,
            indices=f"range({count})",
            extra=PLUS_TWO,
            extra_doc=" + rollback, finalize",
        )
    )
    templates = (("KUBERNAUT_TEMPLATES_DIR", str(ours)),)
    uncached = (*templates, (CACHE_ENV, "off"))
    cases = [
        Case(("ours", count), sys.executable, ENTRY, "processor", count, env=templates, warm=True),
        Case(("uncached", count), sys.executable, ENTRY, "processor", count, env=uncached),
        Case(("plain", count), sys.executable, plain, "processor", count),
        Case(("plain+2", count), sys.executable, plain7, "processor", count),
    ]
    if compare is not None:
        # The other version's modules first on the path (before this checkout's editable install).
        other = (*templates, ("PYTHONPATH", str(compare / "include")))
        entry = compare / "dags" / ENTRY.name
        cases.append(Case(("compare", count), sys.executable, entry, "processor", count, env=other))
    if ERRORS_ENTRY.exists():
        cases.append(Case(("error file", count), sys.executable, ERRORS_ENTRY, "processor", 0, env=templates))
    if factory_python:
        folder = work / f"dag-factory-{count}"
        folder.mkdir()
        for i in range(count):
            (folder / f"generated_{i}.yaml").write_text(DAG_FACTORY_TEMPLATE.format(i=i))
        entry = work / f"dag_factory_entry_{count}.py"
        entry.write_text(DAG_FACTORY_ENTRY.format(folder=str(folder)))
        cases.append(Case(("dag-factory", count), factory_python, entry, "processor", count))
    if count > TASK_DAG_INDEX:
        task_dag = f"kubernaut_generated_{TASK_DAG_INDEX}"
        cases.append(
            Case(("ours task", count), sys.executable, ENTRY, "task", None, task_dag, templates, warm=True)
        )
        if compare is not None:
            entry = compare / "dags" / ENTRY.name
            cases.append(Case(("compare task", count), sys.executable, entry, "task", None, task_dag, other))
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-dag-factory", action="store_true", help="skip dag-factory (no network)")
    parser.add_argument(
        "--compare", type=Path, help="another version's copy (its include/ and dags/) to measure beside"
    )
    args = parser.parse_args(argv)
    compare = args.compare.resolve() if args.compare else None
    if compare is not None and not (compare / "dags" / ENTRY.name).is_file():
        parser.error(f"--compare: no dags/{ENTRY.name} in {compare}")
    with tempfile.TemporaryDirectory(prefix="kubernaut-parse-bench-") as tmp:
        return run(
            Path(tmp), args.sizes, args.repeat, with_dag_factory=not args.no_dag_factory, compare=compare
        )


def run(
    work: Path, sizes: list[int], repeat: int, *, with_dag_factory: bool, compare: Path | None = None
) -> int:
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    base_env.update(
        AIRFLOW_HOME=str(work / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="0",
        AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY="False",
        DO_NOT_TRACK="1",
        SCARF_NO_ANALYTICS="true",
        PYTHONPYCACHEPREFIX=str(work / "pycache"),
    )
    factory_python = dag_factory_python() if with_dag_factory else None

    cases = [case for count in sizes for case in cases_for(work, count, factory_python, compare)]
    if any(count > TASK_DAG_INDEX for count in sizes):
        plain_one = work / "plain_one_dag.py"
        plain_one.write_text(PLAIN.format(count=1, indices=f"[{TASK_DAG_INDEX}]", extra="", extra_doc=""))
        cases.append(
            Case(("plain task", 1), sys.executable, plain_one, "task", None, f"plain_{TASK_DAG_INDEX}")
        )

    samples: dict[tuple[str, int], list[Sample]] = {case.key: [] for case in cases}
    for round_ in range(repeat + 1):  # round 0 warms the bytecode cache, not counted
        for case in cases:
            sample = run_case(case, base_env)
            if round_:
                samples[case.key].append(sample)
        print(f"round {round_}/{repeat} done", file=sys.stderr)
    cpu = {key: statistics.median(s.cpu for s in values) for key, values in samples.items()}
    wall = {key: statistics.median(s.wall for s in values) for key, values in samples.items()}
    report(cpu, wall, sizes)
    return 0


def report(cpu: dict[tuple[str, int], float], wall: dict[tuple[str, int], float], sizes: list[int]) -> None:
    def cell(key: tuple[str, int]) -> str:
        return f"{cpu[key]:.3f} ({wall[key]:.2f})" if key in cpu else "n/a"

    def ratio(a: tuple[str, int], b: tuple[str, int]) -> str:
        return f"{cpu[a] / cpu[b]:.2f}" if a in cpu and b in cpu else "n/a"

    print("\nDAG processor: DagBag(file) in a fresh process; CPU seconds (wall), median")
    head = [
        "templates",
        "this project",
        "uncached",
        "compare",
        "dag-factory",
        "plain",
        "plain+2",
        "ours/plain",
        "df/ours",
        "error file",
    ]
    print(" | ".join(head))
    for n in sizes:
        row = [
            str(n),
            cell(("ours", n)),
            cell(("uncached", n)),
            cell(("compare", n)),
            cell(("dag-factory", n)),
            cell(("plain", n)),
            cell(("plain+2", n)),
            ratio(("ours", n), ("plain", n)),
            ratio(("dag-factory", n), ("ours", n)),
            cell(("error file", n)),
        ]
        print(" | ".join(row))

    print("\nWorker: parse for one task (parsing context dag_id); CPU seconds (wall), median")
    print("templates | this project | compare | plain (the one DAG)")
    for n in sizes:
        if ("ours task", n) in cpu:
            print(f"{n} | {cell(('ours task', n))} | {cell(('compare task', n))} | {cell(('plain task', 1))}")

    print("\nGoals (CPU time)")
    at = FLOOR_GOAL_AT
    if ("ours", at) in cpu and ("plain", at) in cpu:
        r = cpu[("ours", at)] / cpu[("plain", at)]
        print(
            f"- at {at}: {r:.2f}x the plain floor (goal <= {FLOOR_RATIO_GOAL}x): {verdict(r <= FLOOR_RATIO_GOAL)}"
        )
    for n in DAG_FACTORY_GOAL_AT:
        if ("ours", n) in cpu and ("dag-factory", n) in cpu:
            s = cpu[("dag-factory", n)] / cpu[("ours", n)]
            goal = DAG_FACTORY_SPEEDUP_GOAL
            print(f"- at {n}: {s:.2f}x faster than dag-factory (goal >= {goal}x): {verdict(s >= goal)}")


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


if __name__ == "__main__":
    sys.exit(main())
