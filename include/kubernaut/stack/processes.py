"""One Airflow component (or any server) as a supervised process: started in its own session
with its own log file, stopped with SIGTERM and waited for, or killed with its whole process
tree (what a crashed machine or an OOM-killed container does, for the recovery tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def _tree(pid: int) -> list[Any]:
    """The process and every descendant (psutil processes), the root first."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _living(processes: list[Any]) -> list[Any]:
    import psutil

    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


def _send(processes: list[Any], signum: int) -> None:
    import psutil

    for process in processes:
        try:
            process.send_signal(signum)
        except psutil.NoSuchProcess:
            pass


@dataclass
class Component:
    """``argv`` run with ``env``, output to ``log``; ``ready`` (if given) says it serves."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log: Path
    ready: Callable[[], bool] | None = None
    proc: subprocess.Popen[bytes] | None = None
    started: list[float] = field(default_factory=list)

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Component:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            # Own session: a terminal's Ctrl-C reaches only `kubernaut stack`, which stops the
            # components in order.
            self.proc = subprocess.Popen(
                list(self.argv),
                env=dict(self.env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(time.time())
        return self

    def wait_ready(self, timeout: float) -> Component:
        deadline = time.monotonic() + timeout
        while self.ready is not None:
            if not self.running():
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            try:
                if self.ready():
                    break
            except (httpx.HTTPError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready in {timeout:.0f}s; see {self.log}")
            time.sleep(0.5)
        return self

    def stop(self, timeout: float = 30.0, grace: float = 5.0) -> None:
        """SIGTERM, then wait (``timeout``) for it to exit; what is left of its process tree
        then gets SIGTERM (Airflow's "stop now"), after ``grace`` SIGKILL."""
        if self.proc is None:
            return
        tree = _tree(self.proc.pid)
        _send(tree[:1], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            tree += [p for p in _tree(self.proc.pid)[1:] if p not in tree]  # late children too
            time.sleep(0.1)
        for signum in (signal.SIGTERM, signal.SIGKILL):
            left = _living(tree)
            if not left:
                break
            _send(left, signum)
            deadline = time.monotonic() + grace
            while _living(left) and time.monotonic() < deadline:
                self.proc.poll()  # reap the root: a zombie is not "living"
                time.sleep(0.1)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> list[int]:
        """SIGKILL the process and all its descendants at once; their pids."""
        import psutil

        if self.proc is None:
            return []
        tree = _tree(self.proc.pid)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the session started with it
        except ProcessLookupError:
            pass
        _send(tree, signal.SIGKILL)  # anything that left the group
        self.proc.wait(timeout=10)  # reaped here, so its exit status is kept
        psutil.wait_procs(tree[1:], timeout=10)
        return [p.pid for p in tree]
