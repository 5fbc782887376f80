"""A fallback chain through real Airflow runs (``dag.test()``, metadata DB and history in
PostgreSQL): the first template's run fails and rolls back, its ``finalize`` task hands the
same alert occurrence on to the template's ``fallback`` through the Execution API (the DAG run
appears in Airflow with its deterministic run id and the occurrence's alert), and nobody is
paged while a remedy is left. (The end of the chain, a person paged, and "once": in
tests/intake/test_fallback.py, with the real history; a second dag.test here would cost ~15 s.)"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kubernaut.actions import Action, ActionContext, ActionParams, ActionResult, registry
from kubernaut.history import History
from kubernaut.intake.decisions import dag_run_id
from kubernaut.intake.launcher import fallback_run_id
from kubernaut.intake.payload import Alert
from kubernaut.testing import RecordingServer
from kubernaut.testing.webhook import recording_server
from tests.conftest import REPO


class _NoParams(ActionParams):
    pass


class Look(Action[_NoParams]):
    """Reads nothing, changes nothing: the step whose failure the test injects."""

    kind = "custom"
    name = "test_fallback_look"
    Params = _NoParams

    def run(self, ctx: ActionContext, params: _NoParams) -> ActionResult:
        return ActionResult(output={"looked": True})


def template(name: str, extra: str) -> str:
    return (
        f"name: {name}\nalert_types: [FallbackRun]\n{extra}configuration: {{cooldown: 0s}}\n"
        "steps:\n  - name: look\n    action: {type: custom, action: test_fallback_look}\n"
    )


@pytest.fixture
def page() -> Iterator[RecordingServer]:
    with recording_server() as server:
        yield server


@pytest.fixture
def bag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: RecordingServer, airflow_db: str
) -> Iterator[Any]:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    registry.register(Look)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "fb-first.yaml").write_text(template("fb-first", "priority: 90\nfallback: fb-second\n"))
    (templates / "fb-second.yaml").write_text(template("fb-second", "priority: 10\n"))
    config = tmp_path / "kubernaut.yaml"
    config.write_text("notify_conn_id: ops_page\n")
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(config))
    monkeypatch.setenv("AIRFLOW_CONN_OPS_PAGE", json.dumps({"conn_type": "http", "host": page.url}))
    monkeypatch.setenv("KUBERNAUT_TEMPLATES_DIR", str(templates))
    dags = DagBag(str(REPO / "dags"))
    assert not dags.import_errors, dags.import_errors
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)  # type: ignore[no-untyped-call]
    sync_bag_to_db(dags, "dags-folder", None)
    with create_session() as session:  # new DAGs start paused; the fallback's must not be
        for dag_id in ("kubernaut_fb_first", "kubernaut_fb_second"):
            model = session.get(DagModel, dag_id)
            assert model is not None
            model.is_paused = False
    try:
        yield dags
    finally:
        registry._actions.pop((Look.kind, Look.name), None)


def test_finalize_launches_the_fallback_for_the_same_occurrence(bag: Any, page: RecordingServer) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    alert = Alert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": "FallbackRun", "namespace": "demo", "pod": "web-1"},
            "startsAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "fingerprint": secrets.token_hex(8),
        }
    )
    conf = {"alert": alert.to_conf(), "inject_failure": {"step": "look"}}
    first = bag.dags["kubernaut_fb_first"].test(run_conf=conf)
    assert str(first.state) == "failed"
    history = History()
    run = history.run(first.run_id)
    assert run is not None and run["status"] == "rolled_back"
    [handed] = [o for o in run["outcomes"] if o["kind"] == "fallback"]
    expected = fallback_run_id(dag_run_id(alert), "fb-second")
    assert handed["outcome"] == "launched" and handed["detail"]["dag_run_id"] == expected, handed

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "kubernaut_fb_second").all()
        assert [r.run_id for r in runs] == [expected]  # created in Airflow, once
        launched_conf = dict(runs[0].conf or {})
    assert launched_conf["alert"] == alert.to_conf() and launched_conf["fallback_of"] == first.run_id
    assert page.requests == []  # a remedy was left: nobody paged
