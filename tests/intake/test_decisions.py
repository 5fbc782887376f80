from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kubernaut.config import PolicyConfig
from kubernaut.intake.decisions import Decider, Decision, dag_run_id
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Router
from tests.intake.conftest import NOW, FakeAirflow, FakeHistory, alert

DAG = "kubernaut_pod_crash_recovery"
RUN = "alert__0a1b2c3d4e5f6a7b__20240501T120000"


def decider(router: Router, history: FakeHistory, airflow: FakeAirflow, **policy: Any) -> Decider:
    return Decider(router, PolicyConfig(**policy), history=history, airflow=airflow, clock=lambda: NOW)


def run_row(status: str, minutes_ago: float, template: str = "pod-crash-recovery") -> dict[str, Any]:
    return {
        "template": template,
        "target_namespace": "demo",
        "target_name": "web-7d4b9c-x2x",
        "status": status,
        "dag_run_id": "earlier",
        "started_at": NOW - timedelta(minutes=minutes_ago),
    }


def test_run_id_is_derived_from_fingerprint_and_starts_at() -> None:
    assert dag_run_id(Alert.model_validate(alert())) == RUN


def test_triggered_launches_with_the_alert_as_conf_and_records(router: Router) -> None:
    history, airflow = FakeHistory(), FakeAirflow()
    d = decider(router, history, airflow).decide(Alert.model_validate(alert()))
    assert d.decision is Decision.TRIGGERED and d.dag_id == DAG and d.dag_run_id == RUN
    assert airflow.runs[DAG, RUN] == {"alert": alert()}
    assert history.decisions[0]["decision"] == "triggered"
    assert history.decisions[0]["target"] == {"kind": "Pod", "namespace": "demo", "name": "web-7d4b9c-x2x"}


def test_the_same_occurrence_again_is_a_duplicate(router: Router) -> None:
    history, airflow = FakeHistory(), FakeAirflow()
    first = decider(router, history, airflow).decide(Alert.model_validate(alert()))
    again = decider(router, FakeHistory(), airflow).decide(Alert.model_validate(alert()))
    assert (first.decision, again.decision) == (Decision.TRIGGERED, Decision.DUPLICATE)
    assert len(airflow.runs) == 1


def test_a_409_from_airflow_is_a_duplicate(router: Router) -> None:
    airflow = FakeAirflow()
    airflow.run_exists = lambda dag_id, run_id: False  # type: ignore[method-assign]  # raced past the check
    airflow.runs[DAG, RUN] = {}
    d = decider(router, FakeHistory(), airflow).decide(Alert.model_validate(alert()))
    assert d.decision is Decision.DUPLICATE and "409" in d.reason


@pytest.mark.parametrize(
    ("history", "decision", "words"),
    [
        (FakeHistory(runs=[run_row("success", 5)]), Decision.COOLDOWN, "cooldown"),
        (FakeHistory(runs=[run_row("success", 20)]), Decision.TRIGGERED, "launched"),
        (FakeHistory(runs=[run_row("running", 1, template="other")]), Decision.BUSY, "still active"),
        (FakeHistory(failures=3), Decision.BLOCKED, "3 consecutive failed"),
        (FakeHistory(failures=2), Decision.TRIGGERED, "launched"),
    ],
)
def test_history_checks(router: Router, history: FakeHistory, decision: Decision, words: str) -> None:
    airflow = FakeAirflow()
    d = decider(router, history, airflow).decide(Alert.model_validate(alert()))
    assert d.decision is decision and words in d.reason
    assert len(airflow.runs) == (1 if decision is Decision.TRIGGERED else 0)
    assert history.decisions[-1]["decision"] == str(decision)


def test_a_launch_not_yet_running_makes_the_target_busy(router: Router) -> None:
    history, airflow = FakeHistory(), FakeAirflow()
    decider(router, history, airflow).decide(Alert.model_validate(alert()))
    other_occurrence = alert(fingerprint="9999", starts_at="2024-05-01T12:20:00Z")
    d = decider(router, history, airflow).decide(Alert.model_validate(other_occurrence))
    assert d.decision is Decision.BUSY and len(airflow.runs) == 1


def test_blocked_threshold_is_configurable(router: Router) -> None:
    d = Decider(
        router, PolicyConfig(), history=FakeHistory(failures=1), airflow=FakeAirflow(), max_failures=1
    )
    assert d.decide(Alert.model_validate(alert())).decision is Decision.BLOCKED


def test_paused_dag_is_reported_and_not_unpaused(router: Router) -> None:
    airflow = FakeAirflow(paused={DAG})
    d = decider(router, FakeHistory(), airflow).decide(Alert.model_validate(alert()))
    assert d.decision is Decision.PAUSED and not airflow.runs and DAG in airflow.paused


@pytest.mark.parametrize(
    ("raw", "policy", "decision"),
    [
        (alert(status="resolved"), {}, Decision.RESOLVED),
        (alert("NoSuchAlert"), {}, Decision.NO_TEMPLATE),
        (alert("KubernautRolloutRestart", namespace="demo"), {}, Decision.NO_TARGET),
        (
            alert("KubernautRolloutRestart", namespace="payments", deployment="api"),
            {"protected_namespaces": ["payments"]},
            Decision.PROTECTED,
        ),
        (
            alert(
                "KubernautRolloutRestart",
                namespace="demo",
                deployment="api",
                label_kubernaut_io_managed="false",
            ),
            {"require_label": "kubernaut.io/managed=true"},
            Decision.PROTECTED,
        ),
        (
            alert(
                "KubernautRolloutRestart",
                namespace="demo",
                deployment="api",
                label_kubernaut_io_managed="true",
            ),
            {"require_label": "kubernaut.io/managed=true"},
            Decision.TRIGGERED,
        ),
        # The alert cannot tell: not refused here, the run reads the object's labels.
        (
            alert("KubernautRolloutRestart", namespace="demo", deployment="api"),
            {"require_label": "kubernaut.io/managed=true"},
            Decision.TRIGGERED,
        ),
    ],
)
def test_decisions_without_io(
    router: Router, raw: dict[str, Any], policy: dict[str, Any], decision: Decision
) -> None:
    history, airflow = FakeHistory(), FakeAirflow()
    d = decider(router, history, airflow, **policy).decide(Alert.model_validate(raw))
    assert d.decision is decision, d.reason
    assert len(airflow.runs) == (1 if decision is Decision.TRIGGERED else 0)
    assert [x["decision"] for x in history.decisions] == [str(decision)]


def test_preview_without_airflow_or_history_says_so(router: Router) -> None:
    d = Decider(router, PolicyConfig()).decide(Alert.model_validate(alert()))
    assert d.decision is Decision.TRIGGERED
    assert "nothing launched" in d.reason and "routing alone" in d.reason
