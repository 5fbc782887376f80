"""Stopping the stack's processes: SIGTERM and wait, workers first; whatever ignores SIGTERM
or was left by its parent is killed; kill() takes the whole tree at once. Plain Python
processes stand in for the components (no Airflow needed to see the order)."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import psutil

from kubernaut.stack.processes import Component
from kubernaut.stack.stack import Stack

# Writes its name to `order` on SIGTERM, after `linger` seconds; starts a grandchild first
# (which ignores SIGTERM when asked), and prints "ready" once both run.
SCRIPT = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    name, order, linger, stubborn = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN)" if stubborn else "pass"
    child = subprocess.Popen([sys.executable, "-c", f"import signal, time; {ignore}; time.sleep(600)"])
    def stop(*_):
        time.sleep(linger)
        with open(order, "a") as out:
            out.write(name + "\\n")
        sys.exit(0)  # leaves the grandchild behind, as a careless component would
    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    time.sleep(600)
    """
)


def component(tmp_path: Path, name: str, linger: float = 0.0, stubborn: bool = False) -> Component:
    script = tmp_path / "component.py"
    script.write_text(SCRIPT)
    argv = [sys.executable, str(script), name, str(tmp_path / "order"), str(linger), "1" if stubborn else "0"]
    log = tmp_path / f"{name}.log"
    found = Component(name, argv, {}, log, ready=lambda: "ready" in log.read_text())
    return found.start().wait_ready(30)


def tree(c: Component) -> list[psutil.Process]:
    root = psutil.Process(c.pid)
    return [root, *root.children(recursive=True)]


def test_stack_stop_terminates_workers_first_then_the_rest_and_leaves_nothing(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "stack", fresh=False)
    names = ["api-server", "scheduler", "dag-processor", "triggerer", "worker-1", "worker-2"]
    for name in names:
        # A worker lingers on SIGTERM (Celery's warm shutdown): the rest must wait for it.
        stack.components[name] = component(tmp_path, name, linger=1.0 if name.startswith("worker") else 0.0)
    processes = [p for c in stack.components.values() for p in tree(c)]
    assert len(processes) == 12
    stack.stop()
    order = (tmp_path / "order").read_text().split()
    assert order == ["worker-1", "worker-2", "triggerer", "scheduler", "dag-processor", "api-server"]
    assert not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_stop_kills_what_ignores_sigterm_after_the_timeout(tmp_path: Path) -> None:
    c = component(tmp_path, "stubborn", stubborn=True)
    processes = tree(c)
    started = time.monotonic()
    c.stop(timeout=2, grace=1)
    assert time.monotonic() - started < 15
    assert not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_kill_takes_the_whole_tree_at_once(tmp_path: Path) -> None:
    c = component(tmp_path, "victim")
    processes = tree(c)
    killed = c.kill()
    assert sorted(killed) == sorted(p.pid for p in processes)
    assert not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert c.proc is not None and c.proc.returncode == -9
    assert not (tmp_path / "order").exists()  # no SIGTERM handler ran: a crash, not a stop
