"""Secrets never leak, and one undo-journal contract, through the real runner and PostgreSQL.

- A rotate_secret run under dag.test (its values known and random): neither the new nor the
  old value, nor their base64, is in the task log, any XCom or any row of any kubernaut_*
  history table; the undo record is Fernet-encrypted and the rollback still restores the
  old data.
- rotate_secret with consumers, its task killed mid-step and retried: each consumer is
  restarted exactly once by the step and exactly once by the rollback.
- The journal keeps a step's first record and refuses a different one, the same way in the
  history DB and in the test-kit.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from cryptography.fernet import Fernet

from kubernaut.actions.base import ActionContext
from kubernaut.history import History
from kubernaut.history.store import UndoRecordConflict
from kubernaut.operators.recorder import HistoryRecorder, NullRecorder
from kubernaut.operators.runner import StepInputError, StepSpec, run_step
from kubernaut.rollback import rollback_run
from kubernaut.sandbox import SandboxCluster
from kubernaut.secrets import SEALED, StepSecrets, decrypt
from kubernaut.testing import UndoJournal
from tests.conftest import AIRFLOW_HOME, HISTORY_DATABASE, REPO

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
NEW = "rotated-Pa55word"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def fernet_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Airflow's Fernet key for this test (the task SDK caches the Fernet object)."""
    from airflow.sdk.crypto import get_fernet

    key = Fernet.generate_key().decode()
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", key)
    get_fernet.cache_clear()
    yield key
    get_fernet.cache_clear()


def put_secret(cluster: SandboxCluster, value: str) -> dict[str, str]:
    data = {"password": b64(value), "user": b64("app")}
    cluster.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "demo"}, "data": data}
    )
    return data


def secret_data(cluster: SandboxCluster) -> dict[str, str]:
    obj = cluster.get("secrets", "demo", "db")
    assert obj is not None
    return dict(obj.get("data") or {})


def generation(cluster: SandboxCluster, name: str) -> int:
    """Bumped by the API server on every change of the deployment's spec (each restart)."""
    dep = cluster.get("deployments", "demo", name)
    assert dep is not None
    return int(dep["metadata"]["generation"])


def restarted_at(cluster: SandboxCluster, name: str) -> str | None:
    dep = cluster.get("deployments", "demo", name)
    assert dep is not None
    value = (dep["spec"]["template"]["metadata"].get("annotations") or {}).get(RESTARTED_AT)
    return None if value is None else str(value)


def settled(cluster: SandboxCluster) -> None:
    for app, count in (("api", 2), ("web", 3)):
        cluster.wait_until(lambda a=app, c=count: len(cluster.list("pods", "demo", labels={"app": a})) == c)


def history_rows() -> list[str]:
    """Every row of every kubernaut_* table of the history DB, as JSON text."""
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=HISTORY_DATABASE)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'kubernaut_%'")
            tables = [r[0] for r in cur.fetchall()]
            rows: list[str] = []
            for table in tables:
                cur.execute(f"SELECT row_to_json(t)::text FROM {table} t")  # names from pg_tables
                rows += [r[0] for r in cur.fetchall()]
            return rows
    finally:
        conn.close()


def xcom_values() -> list[str]:
    """Every XCom value in the Airflow metadata DB, as stored."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(XComModel.task_id, XComModel.value)).all()
        return [
            f"{task_id}: {json.dumps(value) if not isinstance(value, str) else value}"
            for task_id, value in rows
        ]


# --- item 6: a real run under dag.test ------------------------------------------------------

TEMPLATE = """\
name: secret-leak-check
description: Rotate a secret, then fail, so that the rollback puts the old one back
alert_types: [KubernautSecretRotation]
parameters:
  new_password: {type: string, required: true}
configuration: {timeout: 2m, retries: 0}
steps:
  - name: rotate
    action:
      type: kubernetes
      action: rotate_secret
      parameters:
        namespace: "{{ alert.namespace }}"
        secret: db
        data: {password: "{{ params.new_password }}"}
        consumers: [{kind: Deployment, name: api}]
  - name: after-rotation
    action: {type: custom, action: log, parameters: {message: rotated}}
"""


@pytest.fixture
def leak_check_dag(airflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The shipped templates plus TEMPLATE, parsed from the DAGs folder as Airflow does."""
    from airflow.dag_processing.dagbag import DagBag

    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    (templates / "secret-leak-check.yaml").write_text(TEMPLATE)
    monkeypatch.setenv("KUBERNAUT_TEMPLATES_DIR", str(templates))
    bag = DagBag(str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["kubernaut_secret_leak_check"]


def test_rotated_secret_is_nowhere_in_logs_xcom_or_history_and_rolls_back(
    leak_check_dag: Any, cluster: SandboxCluster, fernet_key: str, capfd: pytest.CaptureFixture[str]
) -> None:
    old, new = f"old-{secrets.token_urlsafe(12)}", f"new-{secrets.token_urlsafe(12)}"
    old_data = put_secret(cluster, old)
    settled(cluster)
    capfd.readouterr()
    conf = {
        "alert": {
            "status": "firing",
            "labels": {"alertname": "KubernautSecretRotation", "namespace": "demo"},
        },
        "params": {"new_password": new},
        "inject_failure": {"step": "after-rotation"},
    }
    dr = leak_check_dag.test(run_conf=conf)
    captured = capfd.readouterr()
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert states == {
        "rotate": "success",
        "after-rotation": "failed",
        "rollback": "success",
        "finalize": "failed",
    }

    # The rollback restored the old data and restarted the consumer once more.
    assert secret_data(cluster) == old_data
    assert restarted_at(cluster, "api") is None and generation(cluster, "api") == 3

    log_files = [p for p in (AIRFLOW_HOME / "logs").rglob("*") if p.is_file()]
    task_log = captured.out + captured.err + "".join(p.read_text(errors="replace") for p in log_files)
    assert "kubernaut: rotate kubernetes/rotate_secret with" in task_log  # the runner's line is here
    xcoms = xcom_values()
    assert any(x.startswith("rotate: ") and '"password": "***"' in x for x in xcoms), xcoms
    rows = history_rows()
    assert any('"step":"rotate"' in r for r in rows)
    for value in (new, old):
        for form in (value, b64(value)):
            assert form not in task_log, form
            assert not [x for x in xcoms if form in x], form
            assert not [r for r in rows if form in r], form

    # What the undo needed is kept, encrypted with Airflow's Fernet key.
    run = History().run(dr.run_id)
    assert run is not None
    [entry] = run["undo"]
    assert set(entry["prior_state"]) == {SEALED} and entry["undo_status"] == "applied"
    assert entry["parameters"]["data"] == {"password": "***"}
    sealed = json.loads(Fernet(fernet_key.encode()).decrypt(entry["prior_state"][SEALED].encode()))
    assert sealed["state"]["data"] == old_data
    assert sealed["params"] == {"data": {"password": new}}


def test_without_a_fernet_key_a_secret_step_refuses_before_any_change(
    airflow_db: str, cluster: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.crypto import get_fernet

    monkeypatch.delenv("AIRFLOW__CORE__FERNET_KEY", raising=False)
    get_fernet.cache_clear()
    old_data = put_secret(cluster, "old-value-1")
    history = History()
    run_id = history.ensure_run("secret_test", "no-key", "secret-test", {"namespace": "demo"}, False)
    recorder = HistoryRecorder(history, run_id, "rotate", "kubernetes/rotate_secret", "undo")
    spec = rotate_spec([])
    with pytest.raises(StepInputError, match=r"step 'rotate': .*Fernet key.*AIRFLOW__CORE__FERNET_KEY"):
        run_step(
            spec, conf={}, params={}, steps={}, timeout=30, logger=logging.getLogger(), recorder=recorder
        )
    assert secret_data(cluster) == old_data
    run = history.run(run_id)
    assert run is not None and run["undo"] == [] and run["steps"][0]["status"] == "failed"
    get_fernet.cache_clear()


def test_dry_run_record_shows_no_value_and_needs_no_key(
    airflow_db: str, cluster: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW__CORE__FERNET_KEY", raising=False)
    old_data = put_secret(cluster, "old-value-2")
    spec = rotate_spec(["api"])
    outcome = run_step(
        spec,
        conf={"dry_run": True},
        params={},
        steps={},
        timeout=30,
        logger=logging.getLogger(),
        recorder=NullRecorder(),
    )
    record = outcome.record
    assert record["parameters"]["data"] == {"password": "***"} and record["undo"] == "***"
    assert record["output"]["restarted"] == ["Deployment/api"]
    assert NEW not in repr(record) and b64(NEW) not in repr(record)
    assert old_data["password"] not in repr(record)
    assert secret_data(cluster) == old_data


# --- item 7: rotate_secret with consumers, killed and retried --------------------------------


def rotate_spec(consumers: list[str]) -> StepSpec:
    return StepSpec(
        template="secret-test",
        name="rotate",
        action_type="kubernetes",
        action_name="rotate_secret",
        parameters={
            "namespace": "demo",
            "secret": "db",
            "data": {"password": NEW},
            "consumers": [{"kind": "Deployment", "name": c} for c in consumers],
        },
    )


CHILD = textwrap.dedent(
    """
    import logging, os, signal, sys
    from kubernetes import client
    from kubernaut.history import History
    from kubernaut.operators.recorder import HistoryRecorder
    from kubernaut.operators.runner import StepSpec, run_step

    mode, run_id, new = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    api, method, victim = {
        "after-secret": (client.CoreV1Api, "patch_namespaced_secret", "db"),
        "after-first-consumer": (client.AppsV1Api, "patch_namespaced_deployment", "api"),
    }[mode]
    original = getattr(api, method)

    def patch_then_die(self, name, *args, **kwargs):
        answer = original(self, name, *args, **kwargs)
        if name == victim:
            os.kill(os.getpid(), signal.SIGKILL)
        return answer

    setattr(api, method, patch_then_die)
    recorder = HistoryRecorder(History(), run_id, "rotate", "kubernetes/rotate_secret", "undo")
    consumers = [{"kind": "Deployment", "name": "api"}, {"kind": "Deployment", "name": "web"}]
    spec = StepSpec(template="secret-test", name="rotate", action_type="kubernetes",
                    action_name="rotate_secret",
                    parameters={"namespace": "demo", "secret": "db", "data": {"password": new},
                                "consumers": consumers})
    run_step(spec, conf={}, params={}, steps={}, timeout=60, logger=logging.getLogger(), recorder=recorder)
    print("not killed")
    """
)


@pytest.mark.parametrize("moment", ["after-secret", "after-first-consumer"])
def test_killed_rotation_restarts_each_consumer_once_and_its_rollback_once(
    moment: str, airflow_db: str, cluster: SandboxCluster, fernet_key: str
) -> None:
    old_data = put_secret(cluster, "old-value-3")
    settled(cluster)
    assert generation(cluster, "api") == generation(cluster, "web") == 1
    history = History()
    run_id = history.ensure_run("secret_test", f"kill-{moment}", "secret-test", {"namespace": "demo"}, False)

    child = subprocess.run(
        [sys.executable, "-c", CHILD, moment, str(run_id), NEW],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert child.returncode == -9, child.stdout + child.stderr
    assert secret_data(cluster)["password"] == b64(NEW)
    # The complete record, both consumers included, was journaled before the first change.
    journaled = history.undo_record(run_id, "rotate")
    assert journaled is not None and set(journaled) == {SEALED}
    state = decrypt(journaled[SEALED])["state"]
    assert state["data"] == old_data
    assert state["restarted"] == {"Deployment/api": None, "Deployment/web": None}
    assert generation(cluster, "api") == (2 if moment == "after-first-consumer" else 1)
    assert generation(cluster, "web") == 1
    stamp = restarted_at(cluster, "api")

    recorder = HistoryRecorder(history, run_id, "rotate", "kubernetes/rotate_secret", "undo")
    outcome = run_step(
        rotate_spec(["api", "web"]),
        conf={},
        params={},
        steps={},
        timeout=60,
        logger=logging.getLogger(),
        recorder=recorder,
    )
    assert outcome.record["output"]["restarted"] == ["Deployment/api", "Deployment/web"]
    assert generation(cluster, "api") == generation(cluster, "web") == 2  # each restarted exactly once
    if moment == "after-first-consumer":
        assert restarted_at(cluster, "api") == stamp
    assert history.undo_record(run_id, "rotate") == journaled  # the first record stays

    def make_context() -> ActionContext:
        return ActionContext(timeout=30, poll_interval=0.1)

    def undo() -> list[str]:
        report = rollback_run(
            history, run_id, {"rotate": {"mode": "undo"}}, make_context, lambda step: {}, logging.getLogger()
        )
        return [i.status for i in report.items]

    assert undo() == ["applied"]
    assert secret_data(cluster) == old_data
    for name in ("api", "web"):
        assert restarted_at(cluster, name) is None and generation(cluster, name) == 3, name
    undo()  # a second pass changes nothing
    assert generation(cluster, "api") == generation(cluster, "web") == 3
    [entry] = history.journal(run_id)
    assert entry.undo_status == "applied" and entry.undo_attempts == 1


# --- one contract, production and test-kit ----------------------------------------------------


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "sealed"])
@pytest.mark.parametrize("where", ["history-db", "test-kit"])
def test_the_journal_keeps_the_first_record_and_refuses_another(
    where: str, sealed: bool, airflow_db: str, fernet_key: str
) -> None:
    hidden = StepSecrets({"data": {"password": NEW}} if sealed else {})
    if where == "history-db":
        history = History()
        run_id = history.ensure_run("journal_test", f"contract-{sealed}", "t", {}, False)

        def save(record: dict[str, Any]) -> None:
            history.save_undo(run_id, "rotate", "kubernetes/rotate_secret", {}, hidden.seal(record))

        def journaled() -> dict[str, Any] | None:
            return hidden.open(history.undo_record(run_id, "rotate"))
    else:
        journal = UndoJournal(step="rotate")

        def save(record: dict[str, Any]) -> None:
            journal.save(hidden.seal(record))

        def journaled() -> dict[str, Any] | None:
            return hidden.open(journal.record)

    first = {"data": {"password": b64("old")}, "restarted": {"Deployment/api": None}, "at": (1, 2)}
    save(first)
    save({**first, "at": [1, 2]})  # the same record again (a conflict retry, a retried attempt)
    with pytest.raises(UndoRecordConflict, match=r"step 'rotate'.*\(in restarted\).*remember_prior"):
        save({**first, "restarted": {"Deployment/api": "2026-01-01T00:00:00Z"}})
    assert journaled() == {**first, "at": [1, 2]}
