"""The assessment trigger against real Prometheus, Alertmanager and the sandbox cluster: an
alert rule that really fires and resolves, a change really reverted, Alertmanager down.

The four scenarios wait at the same time (one module-wide fixture; short delays, seconds),
each on its own alert target so their ``ALERTS`` series never mix."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

import kubernaut.triggers.assessment as trigger_module
from kubernaut.assessment import Assessment, assess
from kubernaut.assessment.probes import drift_probes
from kubernaut.testing.services import MonitoringStack
from kubernaut.triggers.assessment import AssessmentTrigger
from tests.assessment.conftest import Fault
from tests.conftest import connected_sandbox

AFTER, WINDOW = 5.0, 2.0  # generous: the alert resolves within a few seconds, even on a loaded machine


def as_stored(trigger: AssessmentTrigger) -> AssessmentTrigger:
    """The trigger as the triggerer builds it: kwargs through Airflow's serde, class by path."""
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.serde import deserialize, serialize

    classpath, kwargs = trigger.serialize()
    restored: AssessmentTrigger = import_string(classpath)(**dict(deserialize(serialize(kwargs))))  # type: ignore[call-overload]
    return restored


Outcome = tuple[dict[str, Any], Assessment]


def request(labels: dict[str, str], **extra: Any) -> dict[str, Any]:
    now = time.time()
    return {
        "alert_labels": labels,
        "target": {"kind": "Deployment", "namespace": "demo", "name": labels["deployment"]},
        "started": now,  # the alert fired before the run started
        "ended": now,
        "after_at": now + AFTER,
        "due": now + AFTER + WINDOW,
        "metrics": [{"query": f'max(kubernaut_assess_fault{{job="{labels["job"]}"}})', "better": "lower"}],
        "probes": [],
        **extra,
    }


def scale(cluster: Any, name: str, replicas: int) -> None:
    dep = cluster.get("deployments", "demo", name)
    assert dep is not None
    dep["spec"]["replicas"] = replicas
    cluster.apply(dep)


async def _fire_all(requests: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    async def one(req: dict[str, Any]) -> dict[str, Any]:
        event = await anext(as_stored(AssessmentTrigger(req, settle=0.0)).run())
        payload: dict[str, Any] = event.payload
        return payload

    payloads = await asyncio.gather(*(one(r) for r in requests.values()))
    return dict(zip(requests, payloads, strict=True))


@pytest.fixture(scope="module")
def outcomes(
    alerting: MonitoringStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Outcome]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trigger_module, "READ_PAUSE", 0.1)
        for name, value in alerting.connection_env().items():
            mp.setenv(name, value)
        mp.setenv("AIRFLOW_CONN_ALERTMANAGER_DOWN", "http://127.0.0.1:9")
        with connected_sandbox(tmp_path_factory.mktemp("sandbox"), mp, pod_ready_delay=0.2) as cluster:
            faults = {
                "effective": Fault(alerting, "api"),
                "ineffective": Fault(alerting, "stuck"),
                "reverted": Fault(alerting, "web"),
                "unknown": Fault(alerting, "other"),
            }
            for fault in faults.values():
                fault.set(1)
            labels = {name: fault.wait(firing=True)[0]["labels"] for name, fault in faults.items()}
            before = cluster.get("deployments", "demo", "web")["spec"]["replicas"]  # type: ignore[index]
            scale(cluster, "web", before + 1)  # "the run" scales out and journals the prior count
            journal = [
                {
                    "step": "scale-out",
                    "action": "kubernetes/scale_deployment",
                    "undo_status": "pending",
                    "parameters": {"namespace": "demo", "deployment": "web", "replicas": before + 1},
                    "prior_state": {"replicas": before},
                }
            ]
            requests = {
                "effective": request(labels["effective"]),
                "ineffective": request(labels["ineffective"]),
                "reverted": request(labels["reverted"], probes=drift_probes(journal, {})),
                "unknown": request(labels["unknown"], alertmanager_conn_id="alertmanager_down"),
            }
            for name in ("effective", "reverted", "unknown"):
                faults[name].set(0)  # the remediation worked (for now)
            scale(cluster, "web", before)  # someone (a GitOps controller) puts its count back
            try:
                payloads = asyncio.run(_fire_all(requests))
            finally:
                for fault in faults.values():
                    fault.set(0)
            yield {name: (p["evidence"], assess(p["evidence"])) for name, p in payloads.items()}


def test_effective_when_the_alert_resolves(outcomes: dict[str, Outcome]) -> None:
    evidence, result = outcomes["effective"]
    assert evidence["alertmanager"]["active"] == []
    assert result.verdict == "effective", result.to_dict()
    parts = result.to_dict()["components"]
    assert parts["alert_gone"]["score"] == 1.0 and parts["recurrence"]["score"] == 1.0
    assert parts["target_health"]["score"] == 1.0
    metric = parts["metrics"]["evidence"]["metrics"][0]
    assert (metric["before"], metric["after"], metric["score"]) == (1.0, 0.0, 1.0)
    selector = (
        'ALERTS{alertname="KubernautAssessFault", alertstate="firing", deployment="api", namespace="demo"}'
    )
    assert evidence["prometheus"]["query"] == selector


def test_ineffective_when_the_alert_stays(outcomes: dict[str, Outcome]) -> None:
    evidence, result = outcomes["ineffective"]
    assert len(evidence["alertmanager"]["active"]) == 1
    assert evidence["prometheus"]["firing"][-1] >= evidence["prometheus"]["end"] - 2
    assert result.verdict == "ineffective"
    assert result.reasons[0] == "the alert did not go away"
    parts = result.to_dict()["components"]
    assert parts["metrics"]["score"] == 0.5  # 1 -> 1: unchanged
    assert parts["target_health"]["score"] == 0.0  # deployment demo/stuck does not exist


def test_reverted_when_someone_undoes_the_fix(outcomes: dict[str, Outcome]) -> None:
    evidence, result = outcomes["reverted"]
    (probe,) = evidence["drift"]
    assert probe["live"] == probe["prior"] != probe["written"]
    assert evidence["alertmanager"]["active"] == []  # the alert went away, yet the fix is gone
    assert result.verdict == "ineffective" and result.score == 0.0
    assert result.reasons == ["reverted: deployment demo/web spec.replicas: reverted"]


def test_unknown_when_alertmanager_is_down(outcomes: dict[str, Outcome]) -> None:
    evidence, result = outcomes["unknown"]
    assert "request failed" in evidence["alertmanager"]["error"]
    assert result.verdict == "unknown" and result.score is None
    assert result.reasons[0].startswith("alertmanager unreachable: ")
    assert evidence["prometheus"].get("error") is None  # only the unreachable part is missing
