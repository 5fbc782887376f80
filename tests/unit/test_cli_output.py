"""What the CLI prints when its reader leaves, when the history is not configured, and the
commands its hints name (they must run as printed)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from kubernaut import cli

KUBERNAUT = Path(sys.executable).with_name("kubernaut")
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


def _plain_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user's shell: no test Airflow settings, a throwaway AIRFLOW_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "KUBERNAUT"))}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow-home")
    return env


def test_actions_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    # The reader is gone before the first write (`kubernaut actions | head` once head has
    # exited), so every write fails with EPIPE: deterministic, unlike a race with head.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        run = subprocess.run(
            [str(KUBERNAUT), "actions"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=_plain_env(tmp_path),
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in run.stderr and "BrokenPipeError" not in run.stderr, run.stderr
    assert run.returncode == 141  # as if killed by SIGPIPE, what `set -o pipefail` expects


def test_actions_piped_to_head(tmp_path: Path) -> None:
    run = subprocess.run(
        ["bash", "-c", f"{shlex.quote(str(KUBERNAUT))} actions | head -1"],
        capture_output=True,
        env=_plain_env(tmp_path),
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0
    assert run.stdout.startswith("| action | type |"), run.stdout
    assert "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr, run.stderr


def test_history_without_a_connection_says_how_to_configure_it(tmp_path: Path) -> None:
    env = _plain_env(tmp_path)
    default = subprocess.run(
        [str(KUBERNAUT), "history", "list"], capture_output=True, env=env, text=True, timeout=120
    )
    assert default.returncode == 2
    assert "no history database configured" in default.stderr, default.stderr
    assert "set AIRFLOW_CONN_KUBERNAUT_HISTORY=postgresql://" in default.stderr
    assert "unreachable" not in default.stderr
    other = subprocess.run(
        [str(KUBERNAUT), "history", "--conn-id", "ops_history", "list"],
        capture_output=True,
        env=env,
        text=True,
        timeout=120,
    )
    assert "set AIRFLOW_CONN_OPS_HISTORY=postgresql://" in other.stderr, other.stderr


def test_history_configured_but_down_is_unreachable(tmp_path: Path) -> None:
    env = _plain_env(tmp_path)
    env["AIRFLOW_CONN_KUBERNAUT_HISTORY"] = "postgresql://postgres@127.0.0.1:1/nothing"
    run = subprocess.run(
        [str(KUBERNAUT), "history", "list"], capture_output=True, env=env, text=True, timeout=120
    )
    assert run.returncode == 2
    assert "unreachable" in run.stderr and "no history database configured" not in run.stderr, run.stderr


@pytest.fixture
def empty_database() -> Iterator[str]:
    name = f"kubernaut_test_cli_{os.getpid()}"
    admin = psycopg2.connect(f"{PG_SERVER}/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_unmigrated_history_hints_a_command_that_runs(tmp_path: Path, empty_database: str) -> None:
    env = _plain_env(tmp_path)
    env["AIRFLOW_CONN_KUBERNAUT_HISTORY"] = empty_database
    env["PATH"] = "/usr/bin:/bin"  # as in a shell where the venv is not activated
    listing = subprocess.run(
        [str(KUBERNAUT), "history", "list"], capture_output=True, env=env, text=True, timeout=120
    )
    assert listing.returncode == 2
    assert "Traceback" not in listing.stderr, listing.stderr
    hint = listing.stderr.strip().rsplit("create them: ", 1)[1]
    assert hint.endswith(" history migrate") and not hint.startswith("kubernaut "), hint
    migrated = subprocess.run(hint, shell=True, capture_output=True, env=env, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    assert "history schema at version" in migrated.stdout


def test_runnable_names_the_script_as_it_can_be_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(KUBERNAUT), "demo"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.chdir(tmp_path)
    assert cli.runnable() == str(KUBERNAUT)  # not below the current directory: absolute
    monkeypatch.chdir(KUBERNAUT.parents[2])
    assert cli.runnable() == str(KUBERNAUT.relative_to(KUBERNAUT.parents[2]))  # e.g. .venv/bin/kubernaut
    monkeypatch.setenv("PATH", f"{KUBERNAUT.parent}{os.pathsep}/usr/bin:/bin")
    assert cli.runnable() == "kubernaut"  # on PATH and the same script
    # No console script at all (an unusual install): the module, with this interpreter.
    monkeypatch.setattr(sys, "argv", ["-c"])
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))
    assert cli.runnable() == f"{tmp_path / 'python3'} -m kubernaut"


def test_python_dash_m_kubernaut(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "kubernaut", "actions"],
        capture_output=True,
        env=_plain_env(tmp_path),
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("| action | type |")
