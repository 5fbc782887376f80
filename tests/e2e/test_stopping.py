"""Stopping what the demo started, without the full demo: a process tree shaped like
``airflow standalone`` and the demo's answer to a hang-up."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from kubernaut import demo_monitoring
from kubernaut.local_stack import machine_parallelism, stop_process_tree
from tests.conftest import REPO

# parent (dies on SIGTERM, like `airflow standalone`) -> component that does not exit on
# SIGTERM (a scheduler waiting for a worker) -> worker that ignores SIGTERM.
WORKER = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
COMPONENT = f"""
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, lambda *_: None)
subprocess.Popen([sys.executable, "-c", {WORKER!r}])
time.sleep(600)
"""
PARENT = f"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {COMPONENT!r}])
time.sleep(600)
"""


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def test_stop_process_tree_leaves_no_descendant() -> None:
    proc = subprocess.Popen([sys.executable, "-c", PARENT])
    root = psutil.Process(proc.pid)
    deadline = time.monotonic() + 30
    while len(root.children(recursive=True)) < 2:
        assert time.monotonic() < deadline, "the test tree did not start"
        time.sleep(0.1)
    tree = [root, *root.children(recursive=True)]
    try:
        started = time.monotonic()
        stop_process_tree(proc, timeout=2.0, grace=1.0)
        took = time.monotonic() - started
        assert [p.pid for p in tree if _alive(p)] == []
        assert took < 30, took
    finally:
        for p in tree:
            if _alive(p):
                p.kill()


def test_parallelism_fits_the_machine() -> None:
    # LocalExecutor forks this many workers up front (the demo test counts them): at most two
    # per core, not Airflow's default of 32, and enough for a few steps side by side.
    cores = psutil.cpu_count() or 1
    assert 4 <= machine_parallelism() <= max(4, 2 * cores)


HANGUP = """
import os, signal, sys, time
from pathlib import Path
from kubernaut import demo
from kubernaut.local_stack import AirflowStandalone, SandboxProcess

demo.prepare_history = lambda database: "postgresql://postgres@127.0.0.1:5432/unused"
demo.migrate_history = lambda url: None
start_sandbox = SandboxProcess.start

def sandbox_start(self, timeout=30.0):
    started = start_sandbox(self, timeout)
    Path(sys.argv[2]).write_text(str(self.proc.pid))
    return started

def airflow_start(self, timeout=240.0):
    os.kill(os.getpid(), signal.SIGHUP)  # the terminal closes while Airflow starts
    time.sleep(60)

SandboxProcess.start = sandbox_start
AirflowStandalone.start = airflow_start
sys.exit(demo.main(["--workdir", sys.argv[1]]))
"""


def test_demo_stops_what_it_started_on_hangup(tmp_path: Path) -> None:
    pid_file = tmp_path / "sandbox.pid"
    run = subprocess.run(
        [sys.executable, "-c", HANGUP, str(tmp_path / "work"), str(pid_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    sandbox_pid = int(pid_file.read_text())
    try:
        assert run.returncode == 128 + signal.SIGHUP, run.stdout + run.stderr
        assert "[demo] stopped" in run.stdout
        assert not psutil.pid_exists(sandbox_pid) or not _alive(psutil.Process(sandbox_pid))
        if demo_monitoring.missing() is None:  # started before Airflow: stopped with the rest
            assert "[demo] Prometheus at" in run.stdout, run.stdout
        assert _monitoring_left(tmp_path / "work" / "monitoring") == []
    finally:
        if psutil.pid_exists(sandbox_pid) and "kubernaut.sandbox" in " ".join(_cmdline(sandbox_pid)):
            psutil.Process(sandbox_pid).kill()


def _monitoring_left(workdir: Path) -> list[str]:
    """Prometheus / Alertmanager processes of that demo still alive (their flags name its dir)."""
    left = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(process.info.get("cmdline") or [])
        if str(workdir) in line and _alive(process):
            process.kill()
            left.append(f"{process.pid} {line[:100]}")
    return left


def _cmdline(pid: int) -> list[str]:
    try:
        return list(psutil.Process(pid).cmdline())
    except psutil.Error:
        return []
