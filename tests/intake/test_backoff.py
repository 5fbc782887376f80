"""Exponential backoff between repeat runs for one target, through the intake's HTTP path with
the real history (PostgreSQL): the runs write themselves into the history as a run's tasks do
(``ensure_run``/``finish_run``); a stand-in Airflow REST API records what is launched."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kubernaut.config import BackoffConfig, ConfigError, parse_config, parse_text
from kubernaut.intake.backoff import backoff_delay
from tests.intake.intake_server import IntakeServer, history_database, intake_server, webhook_alert

TEMPLATE = """\
name: backoff-probe
description: answers BackoffProbe; no cooldown, so only the backoff spaces its runs
alert_types: [BackoffProbe]
configuration: {cooldown: 0s}
steps:
  - name: look
    action: {type: kubernetes, action: get_pod_status,
             parameters: {namespace: "{{ alert.namespace }}", pod: "{{ alert.resource }}"}}
"""
BASE, MAX = 2.0, 8.0  # seconds: small, so the test waits out one backoff


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IntakeServer]:
    templates = Path(tmp_path_factory.mktemp("templates"))
    (templates / "backoff-probe.yaml").write_text(TEMPLATE)
    config = parse_config(
        {"blocking": {"backoff": {"base": f"{BASE}s", "max": f"{MAX}s", "window": "1h"}}}, "test"
    )
    with history_database("kn_backoff") as uri, intake_server(uri, templates, config) as srv:
        yield srv


def post(server: IntakeServer, pod: str) -> dict[str, Any]:
    # A new occurrence each time (its own startsAt): a new run id, not a duplicate.
    answer = server.post(webhook_alert("BackoffProbe", {"namespace": "demo", "pod": pod}))
    decision: dict[str, Any] = answer["decisions"][0]
    return decision


def run_ends(server: IntakeServer, decision: dict[str, Any], status: str = "success") -> datetime:
    """The launched run records itself in the history as its tasks do; returns its start."""
    history = server.history()
    try:
        labels = {
            "name": "BackoffProbe",
            "kind": "Pod",
            "namespace": "demo",
            "resource": decision["target"]["name"],
        }
        run_id = history.ensure_run(
            decision["dag_id"], decision["dag_run_id"], "backoff-probe", labels, False
        )
        history.finish_run(run_id, status)
        started: datetime = history.run(run_id)["started_at"]  # type: ignore[index]
        return started
    finally:
        history.close()


def until(decision: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(decision["until"].replace("Z", "+00:00"))


def test_repeat_runs_for_a_target_back_off_exponentially(server: IntakeServer) -> None:
    pod = "backoff-pod"
    first = post(server, pod)
    assert first["decision"] == "triggered", first
    started1 = run_ends(server, first)

    second = post(server, pod)
    assert second["decision"] == "backoff", second
    assert abs((until(second) - started1).total_seconds() - BASE) < 0.01  # 1 run: base
    assert "next run not before" in second["reason"] and "1 run(s)" in second["reason"]
    rows = server.rows(
        "SELECT decision, reason FROM kubernaut_alert_decisions WHERE target_name = %s ORDER BY id", (pod,)
    )
    assert rows[-1] == ("backoff", second["reason"])  # recorded with its reason

    while datetime.now(UTC) < until(second):  # the backoff ends by itself
        time.sleep(0.1)
    third = post(server, pod)
    assert third["decision"] == "triggered", third
    started2 = run_ends(server, third, "rolled_back")

    fourth = post(server, pod)
    assert fourth["decision"] == "backoff", fourth
    assert abs((until(fourth) - started2).total_seconds() - 2 * BASE) < 0.01  # 2 runs: base x 2
    assert len(server.airflow.run_ids("kubernaut_backoff_probe")) == 2  # nothing launched while backing off

    # Another target is not held back by this one's runs.
    assert post(server, "other-pod")["decision"] == "triggered"


def test_delay_doubles_up_to_max_and_zero_base_turns_it_off() -> None:
    config = BackoffConfig(base=timedelta(seconds=BASE), max=timedelta(seconds=MAX))
    assert [backoff_delay(n, config).total_seconds() for n in range(6)] == [0, 2, 4, 8, 8, 8]
    assert backoff_delay(10_000, config).total_seconds() == MAX  # no overflow on long histories
    assert backoff_delay(3, BackoffConfig(base=timedelta(0))).total_seconds() == 0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("blocking: {backoff: {base: 1h, max: 1m}}", "blocking.backoff: Value error, base"),
        ("blocking: {backoff: {base: soon}}", "blocking.backoff.base"),
        ("blocking: {ineffective_chain: {runs: -1}}", "blocking.ineffective_chain.runs"),
        ("blocking: {backof: {}}", "blocking.backof: Extra inputs are not permitted"),
        ("suppression: {node_alerts: ['Node Down']}", "suppression.node_alerts"),
        ("blocking: {resolved_check: maybe}", "blocking.resolved_check"),
    ],
)
def test_bad_block_settings_fail_closed_naming_the_field(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_text(text, "kubernaut.yaml")
    assert problem in str(info.value) and str(info.value).startswith("kubernaut.yaml: invalid")
