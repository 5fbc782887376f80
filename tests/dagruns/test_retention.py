"""History retention with the real PostgreSQL: rows older than their table's retention go (a
run with its steps, journal, outcomes, assessment, escalations), newer ones stay, a run in
flight or awaiting its assessment stays, a dry run deletes nothing; the same through
`kubernaut history prune` and the `kubernaut_maintenance` DAG under dag.test."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from kubernaut.cli import main as kubernaut
from kubernaut.config import parse_config
from kubernaut.history import History
from kubernaut.history.retention import prune
from tests.conftest import REPO
from tests.intake.intake_server import history_database

RETENTION = {"runs": "90d", "steps": "60d", "decisions": "30d", "escalations": "90d", "unblocks": "365d"}
CHILD_TABLES = ("kubernaut_steps", "kubernaut_undo_journal", "kubernaut_outcomes", "kubernaut_assessments")


@pytest.fixture
def history_uri() -> Iterator[str]:
    with history_database("kn_retention") as uri:
        yield uri


@pytest.fixture
def history(history_uri: str) -> Iterator[History]:
    h = History(connect=lambda: psycopg2.connect(history_uri))
    yield h
    h.close()


def _run(h: History, name: str, *, days: float, status: str = "success", children: bool = True) -> int:
    """A run started and finished ``days`` ago (still running: not finished)."""
    alert = {"name": "RetentionProbe", "kind": "Pod", "namespace": "demo", "resource": name}
    run_id = h.ensure_run("kubernaut_probe", name, "probe", alert, False)
    finished = None if status == "running" else f"now() - interval '{days} days'"
    h._query(
        f"UPDATE kubernaut_runs SET status = %s,"
        f" started_at = now() - interval '{days} days' - interval '5 min',"
        f" finished_at = {finished or 'NULL'} WHERE id = %s",
        (status, run_id),
    )
    if children:
        h.step_started(run_id, "scale", "kubernetes/scale_deployment", {"replicas": 3})
        h.step_finished(run_id, "scale", "success", {"ok": True})
        h.save_undo(run_id, "scale", "kubernetes/scale_deployment", {}, {"replicas": 1})
        h.record_outcome(run_id, "run", status, {})
    return run_id


def _ids(h: History, table: str) -> set[int]:
    return {int(r["id"]) for r in h._query(f"SELECT id FROM {table}")}


def _count(h: History, table: str, run_id: int) -> int:
    row = h._one(f"SELECT count(*) AS n FROM {table} WHERE run_id = %s", (run_id,))
    return int(row["n"]) if row else 0


def _seed(h: History) -> dict[str, int]:
    runs = {
        "old": _run(h, "old", days=100),
        "new": _run(h, "new", days=1),
        "in_flight": _run(h, "in_flight", days=100, status="running"),
        "awaiting": _run(h, "awaiting", days=100),
        "assessed": _run(h, "assessed", days=100),
        "steps_only": _run(h, "steps_only", days=70),  # older than steps (60d), newer than runs (90d)
    }
    for key in ("awaiting", "assessed"):
        h.record_outcome(runs[key], "assessment_run", "requested", {"run_id": f"assess__{key}"})
    for key in ("old", "assessed"):
        h.record_assessment(
            runs[key],
            verdict="effective",
            score=0.9,
            outcome="success",
            reasons=[],
            components={},
            after_s=600,
            window_s=1800,
        )
    h._query("UPDATE kubernaut_assessments SET assessed_at = now() - interval '99 days'")
    h._query(
        "INSERT INTO kubernaut_escalations (run_id, subject, kind, status, created_at) VALUES "
        "(%s, 'kubernaut_probe/old', 'rollback_failed', 'sent', now() - interval '100 days'),"
        "(NULL, 'kubernaut_probe/alert_a', 'blocked', 'sent', now() - interval '100 days'),"
        "(NULL, 'kubernaut_probe/alert_b', 'blocked', 'sent', now() - interval '10 days')",
        (runs["old"],),
    )
    for days in (40, 31, 5):
        h.record_decision(
            fingerprint=f"f{days}",
            alert_name="RetentionProbe",
            alert_status="firing",
            decision="cooldown",
            reason="probe",
        )
        h._query(
            f"UPDATE kubernaut_alert_decisions SET received_at = now() - interval '{days} days' "
            "WHERE fingerprint = %s",
            (f"f{days}",),
        )
    for days in (400, 10):
        row = h.record_unblock(
            kind="Pod", namespace="demo", name=f"p{days}", alert_name="", by="alice", reason=""
        )
        h._query(
            f"UPDATE kubernaut_unblocks SET unblocked_at = now() - interval '{days} days' WHERE id = %s",
            (row["id"],),
        )
    return runs


EXPECTED = {
    "kubernaut_runs": 2,  # old, assessed
    "kubernaut_steps": 3,  # old, assessed (with their runs), steps_only (steps rule)
    "kubernaut_undo_journal": 3,
    "kubernaut_outcomes": 3,  # old: run; assessed: run + assessment_run
    "kubernaut_assessments": 2,
    "kubernaut_escalations": 2,  # old's (with its run), alert_a's (its own age)
    "kubernaut_alert_decisions": 2,  # 40d, 31d
    "kubernaut_unblocks": 1,  # 400d
}


def _check_pruned(h: History, runs: dict[str, int]) -> None:
    kept = _ids(h, "kubernaut_runs")
    assert kept == {runs["new"], runs["in_flight"], runs["awaiting"], runs["steps_only"]}
    for table in CHILD_TABLES:
        assert _count(h, table, runs["old"]) == 0 and _count(h, table, runs["assessed"]) == 0
    assert (
        _count(h, "kubernaut_steps", runs["new"]) == 1
        and _count(h, "kubernaut_steps", runs["in_flight"]) == 1
    )
    assert _count(h, "kubernaut_undo_journal", runs["awaiting"]) == 1
    # The steps rule took the 70-day-old run's steps and journal; the run and its outcomes stay.
    assert _count(h, "kubernaut_steps", runs["steps_only"]) == 0
    assert _count(h, "kubernaut_undo_journal", runs["steps_only"]) == 0
    assert _count(h, "kubernaut_outcomes", runs["steps_only"]) == 1
    assert [r["subject"] for r in h._query("SELECT subject FROM kubernaut_escalations")] == [
        "kubernaut_probe/alert_b"
    ]
    assert [r["fingerprint"] for r in h._query("SELECT fingerprint FROM kubernaut_alert_decisions")] == ["f5"]
    assert [r["target_name"] for r in h._query("SELECT target_name FROM kubernaut_unblocks")] == ["p10"]


def test_prune_keeps_what_retention_says_and_dry_run_deletes_nothing(history: History) -> None:
    runs = _seed(history)
    retention = parse_config({"retention": RETENTION}, "test").retention
    before = {t: len(_ids(history, t)) for t in EXPECTED}
    counted = prune(history, retention, dry_run=True)
    assert {t: counted.deleted[t] for t in EXPECTED} == EXPECTED
    assert {t: len(_ids(history, t)) for t in EXPECTED} == before  # a dry run deletes nothing
    done = prune(history, retention, batch_size=1)  # one row per transaction: batches join up
    assert {t: done.deleted[t] for t in EXPECTED} == EXPECTED
    assert done.batches > sum(EXPECTED.values()) / 2
    _check_pruned(history, runs)
    again = prune(history, retention)
    assert sum(again.deleted.values()) == 0
    # 0 / null keep for ever.
    forever = parse_config({"retention": {"runs": 0, "steps": None}}, "test").retention
    history._query(
        "UPDATE kubernaut_runs SET finished_at = now() - interval '3000 days' WHERE status <> 'running'"
    )
    report = prune(history, forever)
    assert report.deleted["kubernaut_runs"] == 0 and report.cutoffs["runs"] is None


def test_prune_100k_rows_in_batches(history: History) -> None:
    history._query(
        "INSERT INTO kubernaut_alert_decisions (fingerprint, decision, received_at) "
        "SELECT 'bulk' || g, 'duplicate', now() - interval '40 days' FROM generate_series(1, 100000) g"
    )
    history.record_decision(
        fingerprint="recent", alert_name="", alert_status="firing", decision="busy", reason=""
    )
    retention = parse_config({"retention": RETENTION}, "test").retention
    started = time.monotonic()
    report = prune(history, retention)
    took = time.monotonic() - started
    print(f"pruned 100k decisions in {took:.2f}s ({report.batches} batches of {retention.batch_size})")
    assert report.deleted["kubernaut_alert_decisions"] == 100000
    assert [
        r["fingerprint"] for r in history._query("SELECT fingerprint FROM kubernaut_alert_decisions")
    ] == ["recent"]


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, history_uri: str) -> None:
    """The CLI and the DAG reach this history the production way (its Airflow connection) and
    read the retention from the configuration."""
    config = tmp_path / "kubernaut.yaml"
    config.write_text(json.dumps({"retention": RETENTION}))
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(config))
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNAUT_HISTORY", history_uri.replace("postgresql://", "postgres://"))


def test_history_prune_cli(history: History, configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    runs = _seed(history)
    assert kubernaut(["history", "prune", "--dry-run", "--json"]) == 0
    counted = json.loads(capsys.readouterr().out)
    assert counted["dry_run"] is True and {t: counted["deleted"][t] for t in EXPECTED} == EXPECTED
    assert len(_ids(history, "kubernaut_runs")) == len(runs)
    assert kubernaut(["history", "prune"]) == 0
    out = capsys.readouterr().out
    assert "kubernaut_runs               deleted 2" in out and "kubernaut_alert_decisions    deleted 2" in out
    assert f"total deleted {sum(EXPECTED.values())} in " in out
    _check_pruned(history, runs)


def test_maintenance_dag_prunes_under_dag_test(history: History, configured: None, airflow_db: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    runs = _seed(history)
    bag = DagBag(str(REPO / "dags" / "kubernaut_maintenance.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["kubernaut_maintenance"]
    assert getattr(dag.timetable, "expression", None) == "0 0 * * *" and not dag.catchup  # daily
    dr = dag.test()
    assert str(dr.state) == "success", [(ti.task_id, str(ti.state)) for ti in dr.get_task_instances()]
    _check_pruned(history, runs)
