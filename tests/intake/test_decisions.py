"""The decision flow for one alert (``Launcher``) with in-memory history and Airflow: the
order of the checks, the launch record written before the POST, what an unanswered POST
leaves behind, and concurrent deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from kubernaut.config import PolicyConfig
from kubernaut.intake.airflow_client import AirflowUnavailable, Triggered
from kubernaut.intake.decisions import Decider, Decision, HistoryPort, dag_run_id
from kubernaut.intake.launcher import Launcher
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Router
from tests.intake.conftest import NOW, FakeAirflow, FakeHistory, alert

DAG = "kubernaut_pod_crash_recovery"
RUN = "alert__0a1b2c3d4e5f6a7b__20240501T120000"
T = TypeVar("T")


def launcher(router: Router, history: FakeHistory, airflow: Any, **policy: Any) -> Launcher:
    async def run(work: Callable[[HistoryPort], T]) -> T:
        return work(history)

    return Launcher(Decider(router, PolicyConfig(**policy), clock=lambda: NOW), run, airflow)


async def decide(
    router: Router, history: FakeHistory, airflow: Any, raw: dict[str, Any], **policy: Any
) -> Any:
    return await launcher(router, history, airflow, **policy).decide(Alert.model_validate(raw))


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


async def test_triggered_launches_with_the_alert_as_conf_and_records(router: Router) -> None:
    history, airflow = FakeHistory(), FakeAirflow()
    d = await decide(router, history, airflow, alert())
    assert d.decision is Decision.TRIGGERED and d.dag_id == DAG and d.dag_run_id == RUN
    assert airflow.runs[DAG, RUN] == {"alert": alert()}
    assert history.final() == ["triggered"]
    assert history.decisions[0]["target"] == {"kind": "Pod", "namespace": "demo", "name": "web-7d4b9c-x2x"}


async def test_the_launch_record_is_written_before_the_post(router: Router) -> None:
    history = FakeHistory()
    seen: list[list[str]] = []

    class Recording(FakeAirflow):
        async def trigger(self, dag_id: str, run_id: str, conf: Any) -> Triggered:
            seen.append(history.final())
            return await super().trigger(dag_id, run_id, conf)

    await decide(router, history, Recording(), alert())
    assert seen == [["triggering"]] and history.final() == ["triggered"]


async def test_the_same_occurrence_again_is_a_duplicate_without_calling_airflow(router: Router) -> None:
    history, airflow = FakeHistory(), FakeAirflow()
    first = await decide(router, history, airflow, alert())
    airflow.calls.clear()
    again = await decide(router, history, airflow, alert())
    assert (first.decision, again.decision) == (Decision.TRIGGERED, Decision.DUPLICATE)
    assert airflow.calls == [] and len(airflow.runs) == 1
    assert history.final() == ["triggered", "duplicate"]


async def test_a_409_from_airflow_is_a_duplicate(router: Router) -> None:
    airflow = FakeAirflow()
    airflow.runs[DAG, RUN] = {}  # created outside the intake (or before its history existed)
    history = FakeHistory()
    d = await decide(router, history, airflow, alert())
    assert d.decision is Decision.DUPLICATE and "409" in d.reason
    assert history.final() == ["duplicate"]


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
async def test_history_checks(router: Router, history: FakeHistory, decision: Decision, words: str) -> None:
    airflow = FakeAirflow()
    d = await decide(router, history, airflow, alert())
    assert d.decision is decision and words in d.reason
    assert len(airflow.runs) == (1 if decision is Decision.TRIGGERED else 0)
    assert history.final() == [str(decision)]


async def test_a_launch_not_yet_running_makes_the_target_busy(router: Router) -> None:
    history, airflow = FakeHistory(), FakeAirflow()
    await decide(router, history, airflow, alert())
    other_occurrence = alert(fingerprint="9999", starts_at="2024-05-01T12:20:00Z")
    d = await decide(router, history, airflow, other_occurrence)
    assert d.decision is Decision.BUSY and len(airflow.runs) == 1


async def test_a_target_being_decided_elsewhere_is_busy_at_once(router: Router) -> None:
    history, airflow = FakeHistory(), FakeAirflow()
    with history.target_claim("demo", "web-7d4b9c-x2x") as held:  # another worker's claim
        assert held
        d = await asyncio.wait_for(decide(router, history, airflow, alert()), 1)
    assert d.decision is Decision.BUSY and "being decided right now" in d.reason
    assert not airflow.runs and history.final() == ["busy"]


async def test_blocked_threshold_is_configurable(router: Router) -> None:
    history = FakeHistory(failures=1)
    decider = Decider(router, PolicyConfig(), max_failures=1)

    async def run(work: Callable[[HistoryPort], T]) -> T:
        return work(history)

    d = await Launcher(decider, run, FakeAirflow()).decide(Alert.model_validate(alert()))
    assert d.decision is Decision.BLOCKED


async def test_paused_dag_is_reported_and_not_unpaused(router: Router) -> None:
    airflow = FakeAirflow(paused={DAG})
    d = await decide(router, FakeHistory(), airflow, alert())
    assert d.decision is Decision.PAUSED and not airflow.runs and DAG in airflow.paused


class LostAnswer(FakeAirflow):
    """Airflow creates the run but its answer never arrives (a read timeout after sending)."""

    def __init__(self, *, visible: bool, created: bool = True) -> None:
        super().__init__()
        self.visible, self.created = visible, created

    async def trigger(self, dag_id: str, run_id: str, conf: Any) -> Triggered:
        self.calls.append(f"trigger {run_id}")
        if self.created:
            self.runs[dag_id, run_id] = dict(conf)
        raise AirflowUnavailable("POST: ReadTimeout", uncertain=True)

    async def run_exists(self, dag_id: str, run_id: str, *, attempts: int | None = None) -> bool:
        if not self.visible:
            raise AirflowUnavailable("GET: ReadTimeout", uncertain=True)
        return await super().run_exists(dag_id, run_id)


async def test_an_unanswered_post_whose_run_exists_is_triggered_not_503(router: Router) -> None:
    history = FakeHistory()
    d = await decide(router, history, LostAnswer(visible=True), alert())
    assert d.decision is Decision.TRIGGERED and "confirmed" in d.reason
    assert history.final() == ["triggered"]


async def test_an_unconfirmed_launch_is_recorded_then_confirmed_by_the_redelivery(router: Router) -> None:
    history, airflow = FakeHistory(), LostAnswer(visible=False)
    with pytest.raises(AirflowUnavailable):  # -> 503: Alertmanager delivers again
        await decide(router, history, airflow, alert())
    assert (DAG, RUN) in airflow.runs and history.final() == ["unconfirmed"]  # the run has its record

    other = alert(fingerprint="9999", starts_at="2024-05-01T12:20:00Z")
    assert (
        await decide(router, history, FakeAirflow(runs=dict(airflow.runs)), other)
    ).decision is Decision.BUSY

    healthy = FakeAirflow(runs=dict(airflow.runs))  # Airflow answers again: POST -> 409
    again = await decide(router, history, healthy, alert())
    assert again.decision is Decision.TRIGGERED and again.dag_run_id == RUN
    assert healthy.calls == [f"trigger {RUN}"]
    assert history.final() == ["triggered", "busy"]  # one launch record for the run, settled


async def test_a_refused_post_frees_the_target(router: Router) -> None:
    class Refusing(FakeAirflow):
        async def trigger(self, dag_id: str, run_id: str, conf: Any) -> Triggered:
            raise AirflowUnavailable("POST -> HTTP 503", uncertain=False)

    history = FakeHistory()
    with pytest.raises(AirflowUnavailable):
        await decide(router, history, Refusing(), alert())
    assert history.final() == ["launch_failed"]
    d = await decide(router, history, FakeAirflow(), alert(fingerprint="9999"))
    assert d.decision is Decision.TRIGGERED  # no run exists: the target is not busy


class SlowAirflow(FakeAirflow):
    async def trigger(self, dag_id: str, run_id: str, conf: Any) -> Triggered:
        await asyncio.sleep(0.05)
        return await super().trigger(dag_id, run_id, conf)


async def test_concurrent_deliveries_of_one_occurrence_launch_once(router: Router) -> None:
    history, airflow = FakeHistory(), SlowAirflow()
    shared = launcher(router, history, airflow)
    decided = await asyncio.gather(*(shared.decide(Alert.model_validate(alert())) for _ in range(20)))
    assert sorted(str(d.decision) for d in decided) == ["duplicate"] * 19 + ["triggered"]
    assert airflow.triggers == 1 and sorted(history.final()) == ["duplicate"] * 19 + ["triggered"]


async def test_concurrent_distinct_alerts_for_one_target_launch_once(router: Router) -> None:
    history, airflow = FakeHistory(), SlowAirflow()
    shared = launcher(router, history, airflow)
    alerts = [
        alert(fingerprint=f"{i:016x}", container=f"c{i}", namespace="demo", pod="web-1") for i in range(50)
    ]
    decided = await asyncio.gather(*(shared.decide(Alert.model_validate(a)) for a in alerts))
    assert sorted(str(d.decision) for d in decided) == ["busy"] * 49 + ["triggered"]
    assert airflow.triggers == 1
    # While its launch is under way the target is busy without another claim transaction.
    assert history.claims == 1 and sum("being launched right now" in d.reason for d in decided) == 49


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
async def test_decisions_without_io(
    router: Router, raw: dict[str, Any], policy: dict[str, Any], decision: Decision
) -> None:
    history, airflow = FakeHistory(), FakeAirflow()
    d = await decide(router, history, airflow, raw, **policy)
    assert d.decision is decision, d.reason
    assert len(airflow.runs) == (1 if decision is Decision.TRIGGERED else 0)
    assert history.final() == [str(decision)]
    if decision is not Decision.TRIGGERED:
        assert airflow.calls == []


def test_preview_without_airflow_or_history_says_so(router: Router) -> None:
    d = Decider(router, PolicyConfig()).decide(Alert.model_validate(alert()))
    assert d.decision is Decision.TRIGGERED
    assert "nothing launched" in d.reason and "routing alone" in d.reason


def test_preview_reads_the_history(router: Router) -> None:
    history = FakeHistory(runs=[run_row("success", 5)])
    d = Decider(router, PolicyConfig(), history=history, clock=lambda: NOW).decide(
        Alert.model_validate(alert())
    )
    assert d.decision is Decision.COOLDOWN and history.decisions == []
