"""Fallback chains (kubernaut.intake.fallback) with the real history in PostgreSQL: the run
that rolled back hands its alert occurrence on to the next template once, through the
intake's launching flow and its checks, and the chain ends with a person being notified.

Airflow is the intake tests' in-memory stand-in here (``FakeAirflow``: records the runs it is
asked to create); tests/dagruns/test_fallback_run.py drives the same hand-on from a real run's
``finalize`` task through the Execution API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg2
import pytest

from kubernaut.config import KubernautConfig, parse_config
from kubernaut.history import History
from kubernaut.intake.decisions import Decider, dag_run_id
from kubernaut.intake.fallback import after_run, hand_on, next_template
from kubernaut.intake.history_checks import IntakeHistory
from kubernaut.intake.launcher import Launcher, fallback_run_id
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Router
from kubernaut.templates import load_templates
from kubernaut.testing import RecordingServer, pytest_plugin
from tests.intake.conftest import FakeAirflow
from tests.intake.intake_server import history_database, webhook_alert

# The test-kit's fixtures (a recording HTTP server, a per-test Airflow connection).
webhook_server, airflow_connection = pytest_plugin.webhook_server, pytest_plugin.airflow_connection
STEP = """\
steps:
  - name: look
    action: {type: kubernetes, action: get_pod_status,
             parameters: {namespace: "{{ alert.namespace }}", pod: "{{ alert.resource }}"}}
"""
TEMPLATES = {
    # FallbackProbe: scale-first names tune-config as its fallback; tune-config names none.
    "scale-first": "alert_types: [FallbackProbe]\npriority: 90\nfallback: tune-config\n",
    "tune-config": "alert_types: [FallbackProbe]\npriority: 10\n",
    # ChainProbe: nobody names a fallback: the next-ranked template follows.
    "chain-a": "alert_types: [ChainProbe]\npriority: 90\n",
    "chain-b": "alert_types: [ChainProbe]\npriority: 20\n",
    # StopProbe: a person, at once.
    "hands-off": "alert_types: [StopProbe]\nfallback: none\n",
    "stop-other": "alert_types: [StopProbe]\n",
}


@pytest.fixture(scope="module")
def uri() -> Iterator[str]:
    with history_database("kn_fallback") as found:
        yield found


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Router:
    directory = Path(tmp_path_factory.mktemp("templates"))
    for name, head in TEMPLATES.items():
        (directory / f"{name}.yaml").write_text(
            f"name: {name}\n{head}configuration: {{cooldown: 0s}}\n{STEP}"
        )
    report = load_templates(directory)
    assert report.ok, report.all_errors()
    return Router(report.templates)


@pytest.fixture
def config(webhook_server: RecordingServer, airflow_connection: Callable[..., str]) -> KubernautConfig:
    airflow_connection("ops", webhook_server.url + "/page")
    # Backoff (5 min by default) stays on: a fallback is not a repeat run, it is not spaced.
    return parse_config({"notify_conn_id": "ops", "suppression": {"enabled": False}}, "test")


def occurrence(alertname: str, pod: str) -> Alert:
    return Alert.model_validate(webhook_alert(alertname, {"namespace": "demo", "pod": pod}))


def finished_run(
    uri: str, config: KubernautConfig, alert: Alert, template: str, run_id: str, status: str
) -> Any:
    """A run of ``template`` for the occurrence as its tasks record it, and the ``RunContext``
    its finalize would have (conf, configuration, history, row id)."""
    history = History(connect=lambda: psycopg2.connect(uri))
    labels = {
        "name": alert.alertname,
        "kind": "Pod",
        "namespace": "demo",
        "resource": alert.labels["pod"],
        "fingerprint": alert.fingerprint,
    }
    row = history.ensure_run("kubernaut_" + template.replace("-", "_"), run_id, template, labels, False)
    history.finish_run(row, status)
    return SimpleNamespace(conf={"alert": alert.to_conf()}, config=config, history=history, run_id=row)


def hand_on_from(uri: str, run: Any, run_id: str, template: str, router: Router, airflow: FakeAirflow) -> Any:
    intake = IntakeHistory(connect=lambda: psycopg2.connect(uri))
    try:
        return after_run(run, run_id, template, "rolled_back", airflow=airflow, router=router, history=intake)
    finally:
        intake.close()


def rows(uri: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg2.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        found = list(cur.fetchall())
    conn.close()
    return found


def pages(server: RecordingServer) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in server.requests]


def test_a_rolled_back_run_hands_on_to_its_fallback_once_then_a_person(
    uri: str, router: Router, config: KubernautConfig, webhook_server: RecordingServer
) -> None:
    alert = occurrence("FallbackProbe", "web-1")
    base = dag_run_id(alert)
    airflow = FakeAirflow()
    first = finished_run(uri, config, alert, "scale-first", base, "rolled_back")

    result = hand_on_from(uri, first, base, "scale-first", router, airflow)
    expected = fallback_run_id(base, "tune-config")
    assert (result.outcome, result.template, result.dag_run_id) == ("launched", "tune-config", expected)
    assert expected == f"{base}__fallback__tune-config"
    conf = airflow.runs["kubernaut_tune_config", expected]
    assert conf["fallback_of"] == base and conf["alert"] == alert.to_conf()  # the same occurrence
    [(decision, template, reason)] = rows(
        uri,
        "SELECT decision, template, reason FROM kubernaut_alert_decisions WHERE dag_run_id = %s",
        (expected,),
    )
    assert (decision, template) == ("triggered", "tune-config")
    assert f"fallback of run {base}" in reason and "scale-first rolled_back" in reason, reason
    assert "'scale-first' names 'tune-config' as its fallback" in reason
    assert rows(
        uri, "SELECT outcome FROM kubernaut_outcomes WHERE run_id = %s AND kind = 'fallback'", (first.run_id,)
    ) == [("launched",)]

    # Once: the task retried (or the same run later assessed ineffective) launches nothing more.
    again = hand_on_from(uri, first, base, "scale-first", router, airflow)
    assert again.outcome == "none" and airflow.triggers == 1
    # Even without the recorded outcome (a crash right after the launch), the run id is the same:
    intake = IntakeHistory(connect=lambda: psycopg2.connect(uri))
    try:
        decider = Decider(router, config.policy, blocking=config.blocking)
        launcher = Launcher(decider, _inline(intake), airflow)
        repeat = asyncio.run(
            hand_on(launcher, router, intake, alert, "scale-first", base, "rolled_back", config.choice)
        )
    finally:
        intake.close()
    assert repeat.outcome == "duplicate" and repeat.dag_run_id == expected
    assert airflow.triggers == 1 and len(airflow.runs) == 1
    assert webhook_server.requests == []  # nobody paged while a remedy is left

    # The fallback rolls back too: no template left for this occurrence -> a person is paged.
    second = finished_run(uri, config, alert, "tune-config", expected, "rolled_back")
    end = hand_on_from(uri, second, expected, "tune-config", router, airflow)
    assert end.outcome == "escalated" and "has not run for this occurrence" in end.reason, end
    assert airflow.triggers == 1
    [page] = pages(webhook_server)
    assert page["severity"] == "critical" and "a person must look" in page["text"]
    assert expected in page["text"] and page["fields"]["template"] == "tune-config"
    assert rows(
        uri,
        "SELECT outcome FROM kubernaut_outcomes WHERE run_id = %s AND kind = 'fallback'",
        (second.run_id,),
    ) == [("escalated",)]


def test_next_ranked_template_follows_and_the_same_blocks_apply(
    uri: str, router: Router, config: KubernautConfig, webhook_server: RecordingServer
) -> None:
    # The target is busy (another run on it is still going): the fallback is not launched.
    busy = occurrence("ChainProbe", "web-busy")
    history = History(connect=lambda: psycopg2.connect(uri))
    labels = {"name": "Other", "kind": "Pod", "namespace": "demo", "resource": "web-busy"}
    history.ensure_run("kubernaut_other", "other-run", "other", labels, False)  # status running
    airflow = FakeAirflow()
    run = finished_run(uri, config, busy, "chain-a", dag_run_id(busy), "rolled_back")
    blocked = hand_on_from(uri, run, dag_run_id(busy), "chain-a", router, airflow)
    assert blocked.outcome == "escalated" and "fallback 'chain-b' not launched: busy" in blocked.reason, (
        blocked
    )
    assert airflow.triggers == 0
    [(decision,)] = rows(
        uri,
        "SELECT decision FROM kubernaut_alert_decisions WHERE dag_run_id = %s",
        (fallback_run_id(dag_run_id(busy), "chain-b"),),
    )
    assert decision == "busy"
    assert len(pages(webhook_server)) == 1 and "not launched: busy" in pages(webhook_server)[0]["text"]

    # Another target, not busy: chain-b, the next-ranked template, is launched.
    alert = occurrence("ChainProbe", "web-free")
    run = finished_run(uri, config, alert, "chain-a", dag_run_id(alert), "rolled_back")
    result = hand_on_from(uri, run, dag_run_id(alert), "chain-a", router, airflow)
    assert (result.outcome, result.template) == ("launched", "chain-b"), result
    assert "next-ranked template for ChainProbe" in result.reason


def test_fallback_none_escalates_at_once(
    uri: str, router: Router, config: KubernautConfig, webhook_server: RecordingServer
) -> None:
    alert = occurrence("StopProbe", "web-stop")
    assert next_template(router, "hands-off", alert, set()).template is None
    # Without `fallback: none`, stop-other would have been next.
    assert next_template(router, "stop-other", alert, set()).template is not None
    airflow = FakeAirflow()
    run = finished_run(uri, config, alert, "hands-off", dag_run_id(alert), "rolled_back")
    result = hand_on_from(uri, run, dag_run_id(alert), "hands-off", router, airflow)
    assert result.outcome == "escalated" and "declares `fallback: none`" in result.reason
    assert airflow.triggers == 0 and len(webhook_server.requests) == 1


def test_a_run_not_launched_for_an_alert_occurrence_hands_nothing_on(
    uri: str, router: Router, config: KubernautConfig, webhook_server: RecordingServer
) -> None:
    run = SimpleNamespace(
        conf={"alert": {"labels": {"alertname": "FallbackProbe"}}}, config=config, history=None, run_id=None
    )
    assert hand_on_from(uri, run, "manual__1", "scale-first", router, FakeAirflow()).outcome == "none"
    assert webhook_server.requests == []


def _inline(history: Any) -> Any:
    async def run(work: Callable[[Any], Any]) -> Any:
        return work(history)

    return run


def test_an_ineffective_success_hands_on_but_a_half_undone_run_does_not(
    uri: str, router: Router, config: KubernautConfig, webhook_server: RecordingServer
) -> None:
    airflow = FakeAirflow()
    # The run "succeeded" but its assessment says the problem stayed: the fallback follows.
    alert = occurrence("FallbackProbe", "web-ineffective")
    run = finished_run(uri, config, alert, "scale-first", dag_run_id(alert), "success")
    run.history.record_assessment(
        run.run_id,
        verdict="ineffective",
        score=0.1,
        outcome="success",
        reasons=[],
        components={},
        after_s=0,
        window_s=0,
    )
    intake = IntakeHistory(connect=lambda: psycopg2.connect(uri))
    try:
        result = after_run(
            run,
            dag_run_id(alert),
            "scale-first",
            "assessed ineffective",
            airflow=airflow,
            router=router,
            history=intake,
        )
    finally:
        intake.close()
    assert (result.outcome, result.template) == ("launched", "tune-config"), result
    assert "scale-first assessed ineffective" in result.reason
    # A partially rolled back run (already escalated by its rollback) hands nothing on.
    other = occurrence("FallbackProbe", "web-partial")
    half = finished_run(uri, config, other, "scale-first", dag_run_id(other), "partially_rolled_back")
    assert hand_on_from(uri, half, dag_run_id(other), "scale-first", router, airflow).outcome == "none"
    assert airflow.triggers == 1 and webhook_server.requests == []
