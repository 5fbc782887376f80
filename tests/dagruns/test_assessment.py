"""Every run is assessed after its delay, the production way, in a DAG run of its own: the
template's DAG runs (dag.test), ``finalize`` records the outcome and creates the run of
``kubernaut_assessment`` through its Execution API (once, retry safe); the remediation run is
then over (it no longer holds its template's ``max_active_runs``). The assessment run
(dag.test of ``kubernaut_assessment`` with the conf ``finalize`` gave it: dag.test cannot
resume a run the scheduler would) defers to ``AssessmentTrigger`` (dag.test runs triggers in
line), reads real Prometheus and Alertmanager and the sandbox, and stores the assessment with
the *remediation* run in the history; an ineffective verdict hands the remediation's alert
occurrence on to the next template, once."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kubernaut.history import History
from kubernaut.history.cli import main as history_cli
from kubernaut.intake.decisions import dag_run_id
from kubernaut.intake.launcher import fallback_run_id
from kubernaut.intake.payload import Alert
from kubernaut.operators.assess import ASSESS_TASK, ASSESSMENT_DAG_ID, RUN_OUTCOME_KIND, assessment_run_id
from kubernaut.sandbox import SandboxCluster
from kubernaut.testing.services import MonitoringStack
from tests.assessment.conftest import ALERT, Fault, alerting  # noqa: F401  (session fixture)
from tests.conftest import REPO

SCALE = (
    "action: {type: kubernetes, action: scale_deployment,"
    " parameters: {namespace: demo, deployment: api, replicas: 3}}"
)
TEMPLATES = {
    "assess-scale": f"""\
name: assess-scale
description: scale out; assessed two seconds later
alert_types: [{ALERT}]
priority: 90
fallback: assess-next
configuration: {{cooldown: 0s}}
effectiveness: {{after: 2s, window: 1s, metrics: [{{query: "vector(1)", better: lower}}]}}
steps:
  - name: scale-out
    {SCALE}
""",
    "assess-fail": f"""\
name: assess-fail
description: scale out, then fail; rolled back, assessed all the same
alert_types: [{ALERT}]
priority: 50
fallback: none
configuration: {{cooldown: 0s}}
effectiveness: {{after: 1s, window: 1s}}
steps:
  - name: scale-out
    {SCALE}
  - name: break
    action: {{type: kubernetes, action: scale_deployment,
             parameters: {{namespace: demo, deployment: no-such-deployment, replicas: 1}}}}
""",
    "assess-next": f"""\
name: assess-next
description: the fallback of assess-scale (launched, never run here)
alert_types: [{ALERT}]
priority: 10
configuration: {{cooldown: 0s}}
steps:
  - name: scale-out
    {SCALE}
""",
}


@pytest.fixture(autouse=True)
def no_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """dag.test resumes a deferred task in line: the settle before a trigger's first look
    (kubernaut.triggers.SETTLE_SECONDS, against a race of the live scheduler) only costs time here."""
    monkeypatch.setattr("kubernaut.triggers.wait.SETTLE_SECONDS", 0.0)
    monkeypatch.setattr("kubernaut.triggers.assessment.SETTLE_SECONDS", 0.0)


@pytest.fixture
def assessed_dags(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    airflow_db: str,
    alerting: MonitoringStack,  # noqa: F811
) -> Iterator[dict[str, Any]]:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    templates = tmp_path / "templates"
    templates.mkdir()
    for name, text in TEMPLATES.items():
        (templates / f"{name}.yaml").write_text(text)
    monkeypatch.setenv("KUBERNAUT_TEMPLATES_DIR", str(templates))
    for name, value in alerting.connection_env().items():
        monkeypatch.setenv(name, value)
    bag = DagBag(str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)  # type: ignore[no-untyped-call]
    sync_bag_to_db(bag, "dags-folder", None)
    with create_session() as session:
        # Created unpaused (a paused one would leave every assessment queued) ...
        model = session.get(DagModel, ASSESSMENT_DAG_ID)
        assert model is not None and not model.is_paused
        # ... while template DAGs start paused: the fallback's must not be.
        model = session.get(DagModel, "kubernaut_assess_next")
        assert model is not None
        model.is_paused = False
    yield bag.dags


def _states(dr: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def _assessment_runs(remediation: Any) -> list[Any]:
    """The runs of the assessment DAG for this remediation run (state, conf, note)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == ASSESSMENT_DAG_ID).all()
        return [
            (r.run_id, str(r.state), dict(r.conf or {}), r.note)
            for r in runs
            if (r.conf or {}).get("remediation", {}).get("run_id") == remediation.run_id
        ]


def _run_after(run_id: str) -> float:
    """When the scheduler may start the assessment run ``run_id`` (epoch seconds)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == ASSESSMENT_DAG_ID, DagRun.run_id == run_id).one()
        return float(run.run_after.timestamp())


def _active_runs(dag_id: str) -> int:
    """Airflow's count against ``max_active_runs`` (queued and running runs of the DAG)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        return int(
            session.query(DagRun)
            .filter(DagRun.dag_id == dag_id, DagRun.state.in_([DagRunState.QUEUED, DagRunState.RUNNING]))
            .count()
        )


def _assess(dags: dict[str, Any], conf: dict[str, Any]) -> dict[str, Any]:
    """Runs the assessment run finalize created (its conf), as the scheduler would."""
    dr = dags[ASSESSMENT_DAG_ID].test(run_conf=conf)
    assert str(dr.state) == "success" and _states(dr) == {ASSESS_TASK: "success"}
    run = History().run(conf["remediation"]["run_id"])
    assert run is not None
    return run


def _cli(*argv: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert history_cli(list(argv)) == 0
    return out.getvalue()


def occurrence(labels: dict[str, str]) -> dict[str, Any]:
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": labels,
            "startsAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "fingerprint": secrets.token_hex(8),
        }
    ).to_conf()


def test_finalize_creates_one_assessment_run_and_the_template_is_free(
    assessed_dags: dict[str, Any],
    cluster: SandboxCluster,
    alerting: MonitoringStack,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import kubernaut.operators.assess as assess_module

    # finalize dies right after creating the assessment run, once: its retry must find it.
    real, calls = assess_module.request_assessment, []

    def crash_once(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        calls.append(found)
        if len(calls) == 1:
            raise RuntimeError("injected: finalize crashed after requesting the assessment")
        return found

    monkeypatch.setattr(assess_module, "request_assessment", crash_once)
    dag = assessed_dags["kubernaut_assess_fail"]
    dag.get_task("finalize").retry_delay = timedelta(0)
    fault = Fault(alerting, "api")
    fault.set(1)
    try:
        labels = fault.wait(firing=True)[0]["labels"]
        # A failed run (rolled back) while the alert keeps firing: failed, then assessed.
        dr = dag.test(run_conf={"alert": {"labels": labels, "status": "firing"}})
        states = _states(dr)
        assert str(dr.state) == "failed" and states["finalize"] == "failed", states
        assert ASSESS_TASK not in states  # no longer a task of the remediation run
        assert [c["created"] for c in calls] == [True, False]  # the retry found the run
        [(run_id, state, conf, note)] = _assessment_runs(dr)
        assert run_id == assessment_run_id(dag.dag_id, dr.run_id) and state == "queued"
        assert (
            conf["remediation"]["dag_id"] == dag.dag_id and conf["remediation"]["template"] == "assess-fail"
        )
        assert conf["remediation"]["outcome"] == "rolled_back" and conf["alert"]["labels"] == labels
        assert conf["effectiveness"] == {"after": 1.0, "window": 1.0, "metrics": []}
        # It waits queued until due (the run's end + after + window): the scheduler examines
        # only runs that are due, so a waiting assessment costs it nothing.
        due = conf["remediation"]["ended"] + 2.0
        assert abs(_run_after(run_id) - due) < 0.01, (_run_after(run_id), due)
        assert dr.run_id in note and dag.dag_id in note
        # The remediation run is over while its assessment waits: the template's
        # max_active_runs (1) no longer holds back the next alert.
        assert _active_runs(dag.dag_id) == 0 and dag.max_active_runs == 1
        assert assessed_dags[ASSESSMENT_DAG_ID].max_active_runs >= 1000
        history = History().run(dr.run_id)
        assert history is not None and history["status"] == "rolled_back" and history["assessment"] is None
        [requested] = [o for o in history["outcomes"] if o["kind"] == RUN_OUTCOME_KIND]
        assert requested["outcome"] == "requested" and requested["detail"]["run_id"] == run_id
        assert abs(datetime.fromisoformat(requested["detail"]["run_after"]).timestamp() - due) < 0.01

        run = _assess(assessed_dags, conf)
    finally:
        fault.set(0)
    assessment = run["assessment"]
    assert assessment["verdict"] == "ineffective" and assessment["outcome"] == "rolled_back"
    assert assessment["components"]["drift"]["score"] is None  # its change was undone by the run
    shown = _cli("show", dr.run_id)
    assert "assessment: ineffective" in shown
    linked = assessment_run_id(dr.dag_id, dr.run_id)  # where to find it in the UI
    assert f"outcome {RUN_OUTCOME_KIND}: requested (run {linked})" in shown


def test_ineffective_hands_on_once_and_effective_is_recorded(
    assessed_dags: dict[str, Any],
    cluster: SandboxCluster,
    alerting: MonitoringStack,  # noqa: F811
) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    dag = assessed_dags["kubernaut_assess_scale"]
    fault = Fault(alerting, "api")
    fault.set(1)
    try:
        labels = fault.wait(firing=True)[0]["labels"]
        alert = occurrence(labels)
        dr = dag.test(run_conf={"alert": alert})
        assert str(dr.state) == "success", _states(dr)
        [(_, _, conf, _)] = _assessment_runs(dr)
        # The run succeeded but the alert stays: ineffective, and the fallback follows, for
        # the remediation's alert occurrence.
        run = _assess(assessed_dags, conf)
        assert run["assessment"]["verdict"] == "ineffective", run["assessment"]
        [handed] = [o for o in run["outcomes"] if o["kind"] == "fallback"]
        expected = fallback_run_id(dag_run_id(Alert.model_validate(alert)), "assess-next")
        assert handed["outcome"] == "launched" and handed["detail"]["dag_run_id"] == expected, handed
        # Assessed again (a retried task): nothing more is launched.
        again = _assess(assessed_dags, conf)
        with create_session() as session:
            launched = session.query(DagRun).filter(DagRun.dag_id == "kubernaut_assess_next").all()
            found = [(r.run_id, dict(r.conf or {}).get("fallback_of")) for r in launched]
        assert found == [(expected, dr.run_id)]
        assert [o["kind"] for o in again["outcomes"]].count("fallback") == 1
    finally:
        fault.set(0)

    # A successful run whose alert goes away: green, and effective.
    fault.wait(firing=False)
    dr = dag.test(run_conf={"alert": {"labels": labels, "status": "firing"}})
    assert str(dr.state) == "success"
    [(_, _, conf, _)] = _assessment_runs(dr)
    run = _assess(assessed_dags, conf)
    assert run["status"] == "success"
    assessment = run["assessment"]
    assert assessment["verdict"] == "effective", assessment
    assert (assessment["after_s"], assessment["window_s"]) == (2.0, 1.0)
    drift = assessment["components"]["drift"]
    assert drift["score"] == 1.0 and drift["evidence"]["changes"][0]["live"] == 3  # still scaled out
    assert [o["outcome"] for o in run["outcomes"]][-1] == "effective"
    assert not [o for o in run["outcomes"] if o["kind"] == "fallback"]

    shown = _cli("show", dr.run_id)
    assert "assessment: effective (score " in shown and "alert_gone" in shown
    table = json.loads(_cli("effectiveness", "--since", "1h", "--alert", ALERT, "--json"))
    rows = {r["template"]: r for r in table}
    assert rows["assess-scale"]["effective"] >= 1 and rows["assess-scale"]["success_rate"] == 1.0
    text = _cli("effectiveness", "--template", "assess-scale")
    assert "assess-scale" in text and ALERT in text


def test_no_monitoring_connection_is_unknown_at_once(
    assessed_dags: dict[str, Any], cluster: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a way to ask Alertmanager and Prometheus, waiting cannot help: the verdict is
    ``unknown`` right away, naming what is missing (and the run's state is unchanged)."""
    monkeypatch.delenv("AIRFLOW_CONN_ALERTMANAGER_DEFAULT")
    monkeypatch.delenv("AIRFLOW_CONN_PROMETHEUS_DEFAULT")
    labels = {"alertname": ALERT, "namespace": "demo", "deployment": "api"}
    dr = assessed_dags["kubernaut_assess_scale"].test(
        run_conf={"alert": {"labels": labels, "status": "firing"}}
    )
    assert str(dr.state) == "success"
    [(_, _, conf, _)] = _assessment_runs(dr)
    run = _assess(assessed_dags, conf)
    assert run["status"] == "success"
    assessment = run["assessment"]
    assert assessment["verdict"] == "unknown" and assessment["score"] is None
    assert [r.split(":")[0] for r in assessment["reasons"]] == [
        "alertmanager unreachable",
        "prometheus unreachable",
    ]
    assert "Airflow connection 'alertmanager_default' is not available" in assessment["reasons"][0]


class _StartedByTheScheduler:
    """What the triggerer gives a trigger of a task started there: the task's runtime instance,
    whose template context holds its run (``kubernaut.triggers.assessment.run_conf``)."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.task_id = ASSESS_TASK

    def get_template_context(self) -> dict[str, Any]:
        from types import SimpleNamespace

        return {"dag_run": SimpleNamespace(conf=self.conf)}


def _events(trigger: Any) -> list[Any]:
    import asyncio

    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    return asyncio.run(collect())


def test_started_in_the_triggerer_it_ends_there_and_hands_on_through_a_worker(
    assessed_dags: dict[str, Any],
    cluster: SandboxCluster,
    alerting: MonitoringStack,  # noqa: F811
) -> None:
    """The scheduler's way (``start_from_trigger``): the trigger reads the run from the task
    the triggerer hands it, stores the verdict and ends the task itself (its summary the task's
    XCom), unless an ineffective verdict must hand the alert on (a worker's Execution API).
    Run twice (a triggerer restart), it stores the same verdict and records it once."""
    from airflow.triggers.base import TaskSuccessEvent

    from kubernaut.assessment.names import START_IN_WORKER, STORED
    from kubernaut.operators.assess import KubernautAssessOperator
    from kubernaut.triggers.assessment import AssessmentRunTrigger

    task = assessed_dags[ASSESSMENT_DAG_ID].get_task(ASSESS_TASK)
    assert isinstance(task, KubernautAssessOperator) and task.start_from_trigger
    args = task.start_trigger_args
    assert args is not None and args.trigger_kwargs == {"end": True}
    assert args.trigger_cls == "kubernaut.triggers.assessment.AssessmentRunTrigger"

    def started(conf: dict[str, Any] | None) -> AssessmentRunTrigger:
        trigger = AssessmentRunTrigger(**(args.trigger_kwargs or {}))
        if conf is not None:
            trigger.task_instance = _StartedByTheScheduler(conf)  # type: ignore[assignment]
        return trigger

    # No run to read (the triggerer handed none): the worker starts it.
    [event] = _events(started(None))
    assert event.payload["status"] == START_IN_WORKER

    dag = assessed_dags["kubernaut_assess_scale"]
    fault = Fault(alerting, "api")
    fault.set(1)
    try:
        labels = fault.wait(firing=True)[0]["labels"]
        dr = dag.test(run_conf={"alert": occurrence(labels)})
        [(_, _, conf, _)] = _assessment_runs(dr)
        [event] = _events(started(conf))  # ineffective: the hand-on needs a worker
        assert not isinstance(event, TaskSuccessEvent)
        assert event.payload["status"] == STORED and event.payload["hand_on"] is True
        assert event.payload["summary"]["verdict"] == "ineffective"
        stored = History().run(dr.run_id)
        assert stored is not None and stored["assessment"]["verdict"] == "ineffective"
    finally:
        fault.set(0)

    fault.wait(firing=False)
    dr = dag.test(run_conf={"alert": {"labels": labels, "status": "firing"}})
    [(_, _, conf, _)] = _assessment_runs(dr)
    for _ in range(2):
        [event] = _events(started(conf))
        assert isinstance(event, TaskSuccessEvent), event
        summary = (event.xcoms or {})["return_value"]
        assert isinstance(summary, dict) and summary["verdict"] == "effective", summary
        assert summary["remediation"] == {"dag_id": dag.dag_id, "run_id": dr.run_id}
    run = History().run(dr.run_id)
    assert run is not None and run["assessment"]["verdict"] == "effective"
    assert [o["kind"] for o in run["outcomes"]].count("assessment") == 1


def test_an_assessment_deferred_before_the_upgrade_still_finishes(
    assessed_dags: dict[str, Any],
    cluster: SandboxCluster,
    alerting: MonitoringStack,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tasks that deferred to ``AssessmentTrigger`` (the request computed in the worker, the
    verdict stored by ``execute_complete``) before the assessment moved into the triggerer
    are still waiting after an upgrade: their ``done`` event is still finished and stored."""
    from kubernaut.assessment.run import build_request, remediation_of
    from kubernaut.operators.assess import KubernautAssessOperator
    from kubernaut.triggers.assessment import AssessmentTrigger

    def deferred_the_old_way(self: KubernautAssessOperator, context: Any) -> dict[str, Any]:
        conf = context["dag_run"].conf
        request = build_request(conf, remediation_of(conf))
        self.defer(trigger=AssessmentTrigger(request), method_name="execute_complete")
        raise AssertionError("unreachable")

    monkeypatch.setattr(KubernautAssessOperator, "execute", deferred_the_old_way)
    fault = Fault(alerting, "api")
    fault.wait(firing=False)
    labels = {"alertname": ALERT, "namespace": "demo", "deployment": "api", "job": fault.job}
    dag = assessed_dags["kubernaut_assess_scale"]
    dr = dag.test(run_conf={"alert": {"labels": labels, "status": "firing"}})
    [(_, _, conf, _)] = _assessment_runs(dr)
    run = _assess(assessed_dags, conf)
    assert run["assessment"]["verdict"] == "effective", run["assessment"]
    assert [o["outcome"] for o in run["outcomes"] if o["kind"] == "assessment"] == ["effective"]
