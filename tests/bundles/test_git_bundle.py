"""Templates served from git: the `git` provider's GitDagBundle, as documented in README.md
("Templates from git"), with Airflow's real dag-processor and its metadata DB on PostgreSQL.

The operator's repository holds ``dags/`` (our entry files, copied) and ``templates/``; the
kubernaut package comes from the installed environment, never from the bundle.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg2
import pytest

from kubernaut.live_stack import create_database, drop_database
from kubernaut.local_stack import stop_process_tree
from tests.conftest import REPO

ASSESSMENT = "kubernaut_assessment"  # built by the entry file beside the templates' DAGs
MAINTENANCE = "kubernaut_maintenance"  # the history prune, dags/kubernaut_maintenance.py
BUNDLE = "kubernaut"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
SHIPPED = ("pod-crash-recovery", "pod-diagnostics")
ADDED = "rollout-restart"
# What an operator might push: a typo in an action name (line 6, column 40, steps[0]).
BROKEN_FILE = "restart-canary.yaml"
BROKEN = """\
name: restart-canary
description: Rolling restart of the canary deployment
alert_types: [CanaryRestartRequired]
steps:
  - name: restart
    action: {type: kubernetes, action: rollout_restart_deploymnet,
             parameters: {namespace: "{{ alert.namespace }}", deployment: "{{ alert.labels.deployment }}"}}
"""
T = TypeVar("T")


def dag_id(template: str) -> str:
    return "kubernaut_" + template.replace("-", "_")


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "SRE",
        "GIT_AUTHOR_EMAIL": "sre@example.com",
        "GIT_COMMITTER_NAME": "SRE",
        "GIT_COMMITTER_EMAIL": "sre@example.com",
    }
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def operator_repo(path: Path) -> Path:
    """The layout README.md documents: our entry files in dags/, templates in templates/."""
    git(path.parent, "init", "-q", "-b", "main", path.name)
    (path / "dags").mkdir()
    for entry in sorted((REPO / "dags").glob("*.py")):
        shutil.copy(entry, path / "dags")
    (path / "templates").mkdir()
    for name in SHIPPED:
        shutil.copy(REPO / "templates" / f"{name}.yaml", path / "templates")
    commit(path, "remediation templates")
    return path


def wait_for(check: Callable[[], T | None], timeout: float, what: str, state: Callable[[], str]) -> T:
    """Poll ``check`` until it returns something; fail naming ``what`` and the last state."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{state()}")
        time.sleep(0.5)


@dataclass
class Dag:
    dag_id: str
    is_stale: bool
    has_import_errors: bool
    bundle_version: str | None
    fileloc: str


@dataclass
class Processor:
    """A running `airflow dag-processor` serving one GitDagBundle, and its metadata DB."""

    repo: Path
    storage: Path
    database_url: str
    log: Path
    proc: subprocess.Popen[bytes]

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        conn = psycopg2.connect(self.database_url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    def dags(self) -> dict[str, Dag]:
        rows = self.query(
            "SELECT dag_id, is_stale, has_import_errors, bundle_version, fileloc FROM dag "
            "WHERE bundle_name = %s",
            BUNDLE,
        )
        return {row[0]: Dag(*row) for row in rows}

    def active(self) -> set[str]:
        return {d.dag_id for d in self.dags().values() if not d.is_stale}

    def import_errors(self) -> list[tuple[str, str, str]]:
        return [
            (b, f, s) for b, f, s in self.query("SELECT bundle_name, filename, stacktrace FROM import_error")
        ]

    def bundle_version(self) -> str | None:
        rows = self.query("SELECT version FROM dag_bundle WHERE name = %s", BUNDLE)
        return rows[0][0] if rows else None

    def state(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return (
            f"bundle version {self.bundle_version()}, repo HEAD {git(self.repo, 'rev-parse', 'HEAD')}\n"
            f"dags: {self.dags()}\nimport errors: {self.import_errors()}\n"
            "dag-processor log (tail):\n" + "\n".join(lines[-40:])
        )

    def wait(self, check: Callable[[], T | None], what: str, timeout: float = 90) -> T:
        def checked() -> T | None:
            if self.proc.poll() is not None:
                pytest.fail(f"the dag-processor exited ({self.proc.returncode})\n{self.state()}")
            return check()

        return wait_for(checked, timeout, what, self.state)


@pytest.fixture
def processor(tmp_path: Path) -> Iterator[Processor]:
    from airflow.providers.git.bundles.git import GitDagBundle  # noqa: F401  (fail fast if missing)

    repo = operator_repo(tmp_path / "remediation")
    database = f"kubernaut_bundle_{os.getpid()}_{secrets.token_hex(3)}"
    url = create_database(database)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "KUBERNAUT_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url.replace("postgresql://", "postgresql+psycopg2://"),
            # The setup README.md documents, with the repository reached through git_default.
            "AIRFLOW_CONN_GIT_DEFAULT": json.dumps({"conn_type": "git", "host": repo.as_uri()}),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
                [
                    {
                        "name": BUNDLE,
                        "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
                        "kwargs": {
                            "git_conn_id": "git_default",
                            "tracking_ref": "main",
                            "subdir": "dags",
                            "refresh_interval": 1,
                        },
                    }
                ]
            ),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(tmp_path / "bundles"),
            # Seconds instead of minutes so the test sees each commit quickly: the entry files do
            # not change when a template does, so they are re-parsed every min_file_process_interval.
            "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "1",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "1",
            # A DAG its file no longer produces (a template removed) goes stale after this.
            "AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD": "5",
            "AIRFLOW__SCHEDULER__PARSING_CLEANUP_INTERVAL": "2",
        }
    )
    log = tmp_path / "dag-processor.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        migrate = subprocess.run(
            [AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
        )
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        with log.open("wb") as out:
            proc = subprocess.Popen([AIRFLOW, "dag-processor"], env=env, stdout=out, stderr=subprocess.STDOUT)
        yield Processor(repo=repo, storage=tmp_path / "bundles", database_url=url, log=log, proc=proc)
    finally:
        if proc is not None:
            stop_process_tree(proc, timeout=15, grace=5)
        drop_database(database)


def test_templates_from_git_commit_break_revert(processor: Processor) -> None:
    repo = processor.repo
    head = git(repo, "rev-parse", "HEAD")
    shipped = {ASSESSMENT, MAINTENANCE, *(dag_id(t) for t in SHIPPED)}  # with kubernaut's own DAGs

    # 1. The repository's templates become DAGs, parsed from the bundle's checkout.
    processor.wait(lambda: processor.active() == shipped or None, "the initial DAGs")
    checkout = processor.storage / BUNDLE / "tracking_repo"
    for name, dag in processor.dags().items():
        entry = "kubernaut_maintenance.py" if name == MAINTENANCE else "kubernaut_dags.py"
        assert dag.fileloc == str(checkout / "dags" / entry)
        assert dag.bundle_version == head
    assert (checkout / "templates" / "pod-diagnostics.yaml").is_file()
    assert not (checkout / "include").exists()  # kubernaut comes from the installed package
    assert processor.import_errors() == []

    # 2. Commit a new template: its DAG appears.
    shutil.copy(REPO / "templates" / f"{ADDED}.yaml", repo / "templates")
    added = commit(repo, f"add {ADDED}")
    valid = shipped | {dag_id(ADDED)}
    processor.wait(lambda: processor.active() == valid or None, f"the DAG of the new template {ADDED}")

    # 3. Commit a broken template: one import error naming file, line, column and field ...
    (repo / "templates" / BROKEN_FILE).write_text(BROKEN)
    broken = commit(repo, "add restart-canary (typo)")
    [(bundle, filename, message)] = processor.wait(
        lambda: processor.import_errors() or None, "the import error"
    )
    assert (bundle, filename) == (BUNDLE, "kubernaut_template_errors.py")
    assert f"templates/{BROKEN_FILE}:6:40: steps[0].action.action: unknown kubernetes action " in message
    assert "did you mean 'rollout_restart_deployment'" in message
    assert "1 template file(s) failed to load" in message
    # ... while the other DAGs are parsed at that commit, again and again, and stay active and
    # triggerable (the REST API refuses a DAG that is stale or has import errors).
    error_seen = processor.query("SELECT now()")[0][0]

    def reparsed_since() -> bool | None:
        [(count,)] = processor.query(
            "SELECT count(*) FROM dag WHERE bundle_name = %s AND bundle_version = %s "
            "AND last_parsed_time > %s + interval '3 seconds'",
            BUNDLE,
            broken,
            error_seen,
        )
        return True if count == len(valid) else None

    processor.wait(reparsed_since, "the other DAGs to be parsed again with the broken template present")
    dags = processor.dags()
    assert processor.active() == valid, processor.state()
    assert not any(dags[d].has_import_errors for d in valid), dags
    assert len(processor.import_errors()) == 1

    # 4. Revert it: the error is gone, the DAGs stay.
    git(repo, "revert", "--no-edit", "HEAD")
    reverted = git(repo, "rev-parse", "HEAD")
    processor.wait(
        lambda: (processor.bundle_version() == reverted and processor.import_errors() == []) or None,
        "the import error to clear after the revert",
    )
    assert processor.active() == valid

    # 5. Revert the added template: its DAG goes (stale), the others stay.
    git(repo, "revert", "--no-edit", added)
    processor.wait(lambda: processor.active() == shipped or None, f"the DAG of {ADDED} to go")
    assert processor.import_errors() == []


def test_a_task_parses_the_templates_of_its_bundle_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers check out the commit a DAG was parsed at (versions/<sha>), templates included."""
    repo = operator_repo(tmp_path / "remediation")
    first = git(repo, "rev-parse", "HEAD")
    shutil.copy(REPO / "templates" / f"{ADDED}.yaml", repo / "templates")
    second = commit(repo, f"add {ADDED}")
    monkeypatch.delenv("KUBERNAUT_TEMPLATES_DIR", raising=False)  # else it overrides the checkout's
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH", str(tmp_path / "bundles"))
    monkeypatch.setenv("AIRFLOW_CONN_GIT_DEFAULT", json.dumps({"conn_type": "git", "host": repo.as_uri()}))
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.providers.git.bundles.git import GitDagBundle

    for version, expected in ((first, SHIPPED), (second, (*SHIPPED, ADDED))):
        # As the task runner does (airflow.sdk.execution_time.task_runner.parse).
        bundle = GitDagBundle(name=BUNDLE, version=version, tracking_ref="main", subdir="dags")
        bundle.initialize()
        assert bundle.path == tmp_path / "bundles" / BUNDLE / "versions" / version / "dags"
        bag = BundleDagBag(
            dag_folder=str(bundle.path / "kubernaut_dags.py"),
            safe_mode=False,
            load_op_links=False,
            bundle_path=bundle.path,
            bundle_name=BUNDLE,
        )
        assert sorted(bag.dags) == sorted([ASSESSMENT, *(dag_id(t) for t in expected)])
        assert bag.import_errors == {}
