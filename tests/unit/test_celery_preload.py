"""The Celery worker imports what a remediation task needs before it forks its pool: a forked
task finds the heavy modules (the cncf-kubernetes hook pulls in kubernetes_asyncio, the postgres
hook for the journal) and Airflow's plugins already loaded (bench/throughput.py: imports were
~89 % of a step task's CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PROBE = """
import json, os, sys, time
import airflow.sdk  # what Airflow's Celery worker has imported before it reads the config
before = set(sys.modules)
import kubernaut.stack.celery_config as cc
from airflow.sdk.plugins_manager import _get_plugins
pid = os.fork()
if pid == 0:
    # the forked task: loading plugins and the hook modules must cost nothing
    t = time.process_time()
    import airflow.providers.cncf.kubernetes.hooks.kubernetes
    import airflow.providers.postgres.hooks.postgres
    from kubernaut.actions.registry import registry
    registry.get("kubernetes", "get_deployment_status"), registry.get("kubernetes", "drain_node")
    plugins, _ = _get_plugins()
    from kubernaut.templates.cache import code_stamp
    stamped = code_stamp.cache_info().currsize  # before the parse asks: computed in the parent
    os.write(1, b"CHILD " + json.dumps({"child_cpu": time.process_time() - t, "stamped": stamped,
                            "plugins": sorted(p.name for p in plugins)}).encode() + b"\\n")
    os._exit(0)
os.waitpid(pid, 0)
print("PARENT " + json.dumps({"loaded": sorted(set(sys.modules) - before), "failed": cc.preload(())}))
"""


def test_celery_config_preloads_the_task_imports_and_the_plugins(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout.splitlines()
    found = {
        line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1])
        for line in out
        if line.startswith(("CHILD ", "PARENT "))
    }
    child, parent = found["CHILD"], found["PARENT"]
    for module in (
        "kubernetes_asyncio",
        "airflow.providers.cncf.kubernetes.hooks.kubernetes",
        "airflow.providers.postgres.hooks.postgres",
        "kubernaut.operators.step",
        "kubernaut.history",
        "kubernaut.actions.kubernetes.pods",
        "kubernaut.actions.kubernetes.nodes",
    ):
        assert module in parent["loaded"], module
    assert parent["failed"] == []
    assert {"kubernaut_intake", "kubernaut_ui"} <= set(child["plugins"]), child
    # a fresh interpreter spends ~0.6 CPU s on these; the fork finds them loaded
    assert child["child_cpu"] < 0.05, child
    # the template cache's code stamp too (each task's one-DAG parse checks it)
    assert child["stamped"] == 1, child


LOCAL = """
import json, sys
import airflow.sdk
from kubernaut.executors import PreloadingLocalExecutor
executor = PreloadingLocalExecutor(parallelism=2)
assert "kubernetes_asyncio" not in sys.modules
executor.start()  # preloads, then forks its two workers
workers = len(executor.workers)
executor.end()
print("LOCAL " + json.dumps({"workers": workers, "loaded": [m for m in (
    "kubernetes_asyncio", "airflow.providers.postgres.hooks.postgres", "kubernaut.actions.kubernetes.nodes"
) if m in sys.modules]}))
"""


def test_the_preloading_local_executor_preloads_before_it_forks_its_workers(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run(
        [sys.executable, "-c", LOCAL], env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout.splitlines()
    found = json.loads(next(line for line in out if line.startswith("LOCAL "))[len("LOCAL ") :])
    assert found["workers"] == 2
    assert found["loaded"] == [
        "kubernetes_asyncio",
        "airflow.providers.postgres.hooks.postgres",
        "kubernaut.actions.kubernetes.nodes",
    ]


def test_preload_lists_every_module_the_operators_import_when_they_run() -> None:
    """The operators import their runtime inside ``execute`` (the DAG processor's parse stays
    light), and the actions theirs when they run: each such import missing from PRELOAD would
    cost every task process again (compiled again where no bytecode cache is written)."""
    import ast

    from kubernaut.preload import PRELOAD

    runtime: set[str] = set()
    package = REPO / "include" / "kubernaut"
    paths = [
        *(package / "operators").glob("*.py"),
        *(package / "actions").rglob("*.py"),
        *(package / "kube").glob("*.py"),
        package / "rollback.py",
    ]
    for path in sorted(paths):
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(fn):
                    if isinstance(node, ast.ImportFrom) and node.module:
                        runtime.add(node.module)
                    elif isinstance(node, ast.Import):
                        runtime.update(alias.name for alias in node.names)
    wanted = {m for m in runtime if m.startswith(("kubernaut.", "airflow."))}
    assert wanted, "no run-time imports found: the check reads the wrong files"
    assert sorted(wanted - set(PRELOAD)) == []
