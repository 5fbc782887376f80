"""Ineffective chain -> ``blocked`` until a person runs ``kubernaut unblock`` (audited), through
the intake's HTTP path with the real history (PostgreSQL)."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubernaut.cli import main as kubernaut
from kubernaut.config import parse_config
from tests.intake.intake_server import IntakeServer, history_database, intake_server, webhook_alert

TEMPLATE = """\
name: chain-probe
description: answers ChainProbe; no cooldown and no backoff, so only the chain blocks it
alert_types: [ChainProbe]
configuration: {cooldown: 0s}
steps:
  - name: look
    action: {type: kubernetes, action: get_pod_status,
             parameters: {namespace: "{{ alert.namespace }}", pod: "{{ alert.resource }}"}}
"""
DAG = "kubernaut_chain_probe"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IntakeServer]:
    templates = Path(tmp_path_factory.mktemp("templates"))
    (templates / "chain-probe.yaml").write_text(TEMPLATE)
    config = parse_config(
        {"blocking": {"backoff": {"base": 0}, "ineffective_chain": {"runs": 3, "window": "1h"}}}, "test"
    )
    with history_database("kn_unblock") as uri, intake_server(uri, templates, config) as srv:
        yield srv


@pytest.fixture
def history_conn(server: IntakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """``kubernaut unblock`` reaches the history the production way: its Airflow connection."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBERNAUT_HISTORY", server.history_uri.replace("postgresql://", "postgres://")
    )


def post(server: IntakeServer, pod: str, alertname: str = "ChainProbe") -> dict[str, Any]:
    decision: dict[str, Any] = server.post(webhook_alert(alertname, {"namespace": "demo", "pod": pod}))[
        "decisions"
    ][0]
    return decision


def run_ends(server: IntakeServer, decision: dict[str, Any], status: str, verdict: str | None = None) -> None:
    """The run records how it ended (and, later, its assessment) in the history."""
    history = server.history()
    try:
        alert = {
            "name": decision["alertname"],
            "kind": "Pod",
            "namespace": "demo",
            "resource": decision["target"]["name"],
        }
        run_id = history.ensure_run(decision["dag_id"], decision["dag_run_id"], "chain-probe", alert, False)
        history.finish_run(run_id, status)
        if verdict is not None:
            history._query(
                "INSERT INTO kubernaut_assessments (run_id, verdict, score) VALUES (%s, %s, 0.1)",
                (run_id, verdict),
            )
    finally:
        history.close()


def test_an_ineffective_chain_blocks_until_a_person_unblocks_audited(
    server: IntakeServer, history_conn: None, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = "chain-pod"
    # failed, then a success that was assessed ineffective (the problem stayed), then rolled back:
    # never 3 failures in a row (the old rule), but 3 ineffective runs within the window.
    for status, verdict in (("failed", None), ("success", "ineffective"), ("rolled_back", None)):
        d = post(server, pod)
        assert d["decision"] == "triggered", d
        run_ends(server, d, status, verdict)
    launched = len(server.airflow.run_ids(DAG))

    blocked = post(server, pod)
    assert blocked["decision"] == "blocked", blocked
    assert "ineffective chain: 3 runs for ChainProbe on Pod/demo/chain-pod" in blocked["reason"]
    assert "kubernaut unblock demo/chain-pod" in blocked["reason"]
    assert post(server, pod)["decision"] == "blocked"  # stays blocked: only a person clears it
    assert len(server.airflow.run_ids(DAG)) == launched  # nothing launched while blocked
    # Another alert on the same target has its own chain.
    assert post(server, pod, "ChainProbeOther")["decision"] in ("no_template",)

    assert kubernaut(["unblock", "demo/chain-pod", "--by", "alice", "--reason", "image fixed by hand"]) == 0
    assert "unblocked demo/chain-pod for every alert by alice" in capsys.readouterr().out
    assert post(server, pod)["decision"] == "triggered"  # runs before the unblock no longer count

    assert kubernaut(["unblock", "--list", "--json", "demo/chain-pod"]) == 0
    (audit,) = json.loads(capsys.readouterr().out)
    assert (audit["unblocked_by"], audit["reason"], audit["target_name"]) == (
        "alice",
        "image fixed by hand",
        pod,
    )
    assert audit["unblocked_at"]  # when


def test_a_success_not_assessed_does_not_count_and_default_who_is_the_login(
    server: IntakeServer, history_conn: None, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = "chain-pod-2"
    for status in ("failed", "success", "rolled_back"):
        d = post(server, pod)
        assert d["decision"] == "triggered", d
        run_ends(server, d, status)
    assert post(server, pod)["decision"] == "triggered"  # 2 of 3: not blocked yet
    assert kubernaut(["unblock", "Pod/demo/chain-pod-2", "--alert", "ChainProbe"]) == 0
    assert f"by {getpass.getuser()}" in capsys.readouterr().out


def test_unblock_refuses_a_malformed_target(history_conn: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert kubernaut(["unblock", "a/b/c/d"]) == 2
    assert "invalid target 'a/b/c/d'" in capsys.readouterr().err
