"""What ``finalize`` asks of Airflow for the assessment (``request_assessment``), with the
Execution API's answers as Airflow gives them (the path through a real run:
tests/dagruns/test_assessment.py): the conf names the remediation, a second request (a retried
finalize) is told the run exists and creates nothing, a refusal never fails the remediation."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from airflow.sdk.exceptions import ErrorType
from airflow.sdk.execution_time.comms import ErrorResponse, TriggerDagRun

from kubernaut.clusters import Cluster
from kubernaut.config import parse_config
from kubernaut.operators.assess import ASSESSMENT_DAG_ID, assessment_run_id, request_assessment
from kubernaut.operators.run_context import RunContext


class ExecutionApi:
    """Answers TriggerDagRun as the API server does: created once, then DAGRUN_ALREADY_EXISTS."""

    def __init__(self, refuse: bool = False) -> None:
        self.runs: dict[str, TriggerDagRun] = {}
        self.refuse = refuse

    def _send(self, msg: TriggerDagRun) -> Any:
        if self.refuse:
            return ErrorResponse(error=ErrorType.GENERIC_ERROR, detail={"message": "DAG not found"})
        if msg.run_id in self.runs:
            return ErrorResponse(error=ErrorType.DAGRUN_ALREADY_EXISTS, detail={})
        self.runs[msg.run_id] = msg
        return None


def context() -> dict[str, Any]:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    return {"dag_run": SimpleNamespace(dag_id="kubernaut_x", run_id="alert__ab__1", start_date=started)}


def run(conf: dict[str, Any]) -> RunContext:
    return RunContext(
        conf=conf,
        alert={},
        config=parse_config({}, "test"),
        history=None,
        run_id=None,
        cluster=Cluster("", "kubernetes_default"),
    )


def test_created_once_with_the_remediation_named() -> None:
    api = ExecutionApi()
    alert = {"status": "firing", "labels": {"alertname": "A", "pod": "p"}}
    settings: dict[str, Any] = {"after": 5.0, "window": None, "metrics": []}
    first = request_assessment(context(), run({"alert": alert}), "x", "success", settings, airflow=api)
    again = request_assessment(context(), run({"alert": alert}), "x", "success", settings, airflow=api)
    expected = assessment_run_id("kubernaut_x", "alert__ab__1")
    assert (first["status"], first["created"], again["status"], again["created"]) == (
        "requested",
        True,
        "requested",
        False,
    )
    [(run_id, msg)] = api.runs.items()
    assert run_id == expected and msg.dag_id == ASSESSMENT_DAG_ID
    assert msg.note is not None and "alert__ab__1" in msg.note and "kubernaut_x" in msg.note
    conf = msg.conf or {}
    assert conf["remediation"]["dag_id"] == "kubernaut_x" and conf["remediation"]["run_id"] == "alert__ab__1"
    assert conf["remediation"]["started"] == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert conf["alert"] == alert and conf["effectiveness"] == settings
    assert conf["cluster"] == {"name": "", "conn_id": "kubernetes_default"}


def test_a_bare_alert_conf_is_carried_too() -> None:
    api = ExecutionApi()
    bare = {"status": "firing", "labels": {"alertname": "A"}, "fingerprint": "f"}
    request_assessment(context(), run(bare), "x", "success", {}, airflow=api)
    [msg] = api.runs.values()
    assert (msg.conf or {})["alert"] == bare


def test_a_refusal_is_reported_not_raised() -> None:
    found = request_assessment(context(), run({}), "x", "rolled_back", {}, airflow=ExecutionApi(refuse=True))
    assert found["status"] == "not_requested" and "DAG not found" in found["error"]


def test_the_run_waits_queued_until_due_unless_there_is_no_alert() -> None:
    """Its ``run_after``: the remediation's end + ``after`` (the template's) + ``window`` (the
    configuration's default, 30 min); with no alert to assess, now (None)."""
    from kubernaut.alert import alert_context

    api = ExecutionApi()
    conf = {"alert": {"status": "firing", "labels": {"alertname": "A", "pod": "p"}}}
    alerted = RunContext(
        conf=conf,
        alert=alert_context(conf),
        config=parse_config({}, "test"),
        history=None,
        run_id=None,
        cluster=Cluster("", "kubernetes_default"),
    )
    found = request_assessment(context(), alerted, "x", "success", {"after": 5.0}, airflow=api)
    [msg] = api.runs.values()
    assert msg.run_after is not None
    due = (msg.conf or {})["remediation"]["ended"] + 5.0 + 1800.0
    assert abs(msg.run_after.timestamp() - due) < 1e-3  # (a datetime keeps microseconds)
    assert found["run_after"] == msg.run_after.isoformat()

    api = ExecutionApi()
    found = request_assessment(context(), run({}), "x", "success", {"after": 5.0}, airflow=api)
    [msg] = api.runs.values()
    assert msg.run_after is None and "run_after" not in found
