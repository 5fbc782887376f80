"""The README's demo command, end to end: Airflow standalone (all four components) on
SQLite, the sandbox cluster as its own process, an injected fault, one alert through
the intake webhook, and a run that ends green with the fault fixed. Then what a person
does with it: the printed commands work, and SIGTERM stops every process it started.

Each test gives the demo its own history database: the demo's own
(``kubernaut_demo_history``, which a person may be looking at) is never touched."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import pytest

from kubernaut import demo_monitoring
from kubernaut.demo import HISTORY_DB
from kubernaut.local_stack import machine_parallelism
from tests.conftest import REPO

KUBERNAUT = Path(sys.executable).with_name("kubernaut")
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
STOP_BOUND = 60.0  # seconds from SIGTERM until no process of the demo's tree is left


def _admin(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(f"{PG_SERVER}/postgres")
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _database_oid(name: str) -> int | None:
    """Dropped and recreated, a database gets a new oid; read-only, so the demo's own
    database is looked at, never changed."""
    rows = _admin("SELECT oid FROM pg_database WHERE datname = %s", (name,))
    return int(rows[0][0]) if rows else None


@pytest.fixture
def history_db() -> Iterator[str]:
    """A history database for this test's demo; the demo's own must come out as it was."""
    name = f"kubernaut_test_demo_{os.getpid()}_{secrets.token_hex(3)}"
    demo_db_before = _database_oid(HISTORY_DB)
    yield name
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert _database_oid(HISTORY_DB) == demo_db_before, f"the test touched the demo's {HISTORY_DB}"


def user_env() -> dict[str, str]:
    """A person's shell: no test settings, and this venv's bin/ not on PATH (hints must name
    the commands so that they still run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "KUBERNAUT"))}
    path = os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in path if Path(p) != KUBERNAUT.parent)
    return env


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


class Demo:
    """``kubernaut demo`` as a person starts it, with every process of its tree recorded
    while it runs (a process orphaned at the stop is still known by then)."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.out_file = workdir / "demo.out"
        env = user_env()
        with open(self.out_file, "w") as out:
            self.proc = subprocess.Popen(
                [str(KUBERNAUT), "demo", "--workdir", str(workdir), *args],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.tree: dict[int, psutil.Process] = {self.proc.pid: psutil.Process(self.proc.pid)}
        self.snapshots: list[list[psutil.Process]] = []
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for process in list(self.tree.values()):
                try:
                    children = process.children(recursive=True)
                except psutil.Error:
                    continue
                for child in children:
                    self.tree.setdefault(child.pid, child)
                if process.pid == self.proc.pid:
                    self.snapshots.append(children)
            time.sleep(0.2)

    @property
    def output(self) -> str:
        return self.out_file.read_text()

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.proc.poll() is None, f"demo exited {self.proc.returncode}:\n{self.output}"
            assert time.monotonic() < deadline, f"no {text!r} after {timeout:.0f}s:\n{self.output}"
            time.sleep(1)
        return self.output

    def left_behind(self, bound: float) -> list[str]:
        """Processes of the tree still alive ``bound`` seconds from now (checked until then)."""
        deadline = time.monotonic() + bound
        while True:
            alive = [p for p in list(self.tree.values()) if _alive(p)]
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self._stop.set()
        return [f"{p.pid} {_cmdline(p)[:80]}" for p in alive]

    def kill_everything(self) -> None:
        self._stop.set()
        for p in list(self.tree.values()):
            if _alive(p):
                p.kill()


def _commands(output: str) -> list[str]:
    """The ready-to-paste commands the demo printed (indented, without the [demo] prefix)."""
    return [line.strip() for line in output.splitlines() if line.startswith("    ")]


def _run(command: str) -> subprocess.CompletedProcess[str]:
    """A printed command, pasted into the shell the demo was started from."""
    return subprocess.run(
        ["bash", "-c", command], cwd=REPO, env=user_env(), capture_output=True, text=True, timeout=120
    )


def _assert_fault_fixed(out: str) -> str:
    templates = len(list((REPO / "templates").glob("*.yaml")))
    assert f"{templates} remediation DAGs loaded" in out
    assert "3 in CrashLoopBackOff" in out
    assert "intake decision: triggered" in out
    assert "step rollout-restart      success" in out
    assert "run success; demo/web now 3/3 Ready, 0 crashing -> FAULT FIXED" in out
    run_id = re.search(r"run kubernaut_deployment_replica_mismatch / (\S+)", out)
    assert run_id, out
    return run_id.group(1)


def _assert_assessed(out: str) -> str:
    """The run's assessment, as the demo printed it: measured with the Prometheus and
    Alertmanager it started (the alert it posted resolved after the fix), else unknown."""
    unmeasured = demo_monitoring.missing()
    if unmeasured is None:
        assert "KubeDeploymentReplicasMismatch firing in Alertmanager since" in out
        assert "assessment: effective (score 1.00, after 15s + window 20s)" in out, out
        assert re.search(r"alert_gone\s+1\.00", out), out
        assert re.search(r"target_health\s+1\.00", out), out
        verdict = "effective"
    else:
        assert f"the assessment's verdict will be 'unknown' ({unmeasured})" in out
        assert "assessment: unknown" in out, out
        verdict = "unknown"
    # The assessment run waits queued until due (no running run for the scheduler to examine).
    assert re.search(r", queued until \S+: the run's end \+ after \+ window\) \.\.\.", out), out
    link = re.search(r"the assessment in the UI: \S+/dags/kubernaut_assessment/runs/(\S+)", out)
    assert link and link.group(1).startswith("assess__kubernaut_deployment_replica_mismatch__"), out
    assert f"assessment run {link.group(1)}: success" in out, out  # the run the UI lists
    # Started, run and ended by the triggerer: Airflow recorded no worker host or process.
    assert "its task ran in the triggerer only (no worker slot)" in out, out
    return verdict


def test_demo_fixes_the_fault_hints_work_and_sigterm_stops_every_process(
    tmp_path: Path, history_db: str
) -> None:
    """One demo run (about 1.5 min here) for all of it: the fault, the printed commands, the stop."""
    demo = Demo(tmp_path, "--history-db", history_db)
    try:
        out = demo.wait_for("keep running", timeout=540)
        run_id = _assert_fault_fixed(out)
        verdict = _assert_assessed(out)
        assert f"remediation history in {PG_SERVER}/{history_db}" in out

        # Parallelism fits the machine: LocalExecutor forks that many workers.
        workers = max(
            sum("LocalExecutor" in _cmdline(p) for p in snapshot) for snapshot in demo.snapshots[-5:]
        )
        assert workers == machine_parallelism(), workers

        secrets_file = tmp_path / "airflow" / "kubernaut-secrets.json"
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        assert f"key 'webhook_token' of {secrets_file}" in out
        token = json.loads(secrets_file.read_text())["webhook_token"]
        assert token not in out  # the command reads it from the file
        assert "unpaused DAGs: kubernaut_deployment_replica_mismatch\n" in out
        commands = _commands(out)
        (post,) = [c for c in commands if c.startswith("curl ")]
        (unpause,) = [c for c in commands if " dags unpause " in c]
        (show,) = [c for c in commands if " history show " in c]

        posted = _run(post)
        assert posted.returncode == 0, posted.stderr
        assert posted.stdout.rstrip().endswith("HTTP 200"), posted.stdout
        assert '"decisions":[{' in posted.stdout

        paused_dag = unpause.rsplit(" ", 1)[1]
        assert paused_dag in out.split("paused (Airflow's default", 1)[1].splitlines()[0]
        unpaused = _run(unpause)
        assert unpaused.returncode == 0 and paused_dag in unpaused.stdout, unpaused.stdout + unpaused.stderr

        shown = _run(show)
        assert shown.returncode == 0, shown.stderr
        assert run_id in shown.stdout and "rollout-restart" in shown.stdout
        assert f"assessment: {verdict}" in shown.stdout, shown.stdout  # stored in the history

        assert len(demo.tree) > machine_parallelism() + 5  # the tree was seen: workers and all
        demo.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert demo.left_behind(STOP_BOUND) == []
        assert demo.proc.wait(timeout=5) == 128 + signal.SIGTERM
        assert "[demo] stopped" in demo.output
        print(f"stopped in {time.monotonic() - started:.1f}s")
    finally:
        demo.kill_everything()
