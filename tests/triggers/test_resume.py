"""run_step with ``can_defer`` hands the wait over instead of waiting; ``resume_step`` finishes
the step from the trigger's event exactly as a step that waited in place would."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from cryptography.fernet import Fernet

from kubernaut.actions import VerificationFailed
from kubernaut.config import KubernautConfig
from kubernaut.operators.runner import StepInputError, StepSpec, resume_step, run_step
from kubernaut.sandbox import SandboxCluster
from kubernaut.triggers.wait import StepWaitTrigger
from tests.triggers.conftest import as_stored, fire

LOG = logging.getLogger("test")


class Recorder:
    """The history recorder's contract, in memory."""

    durable = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.undo: dict[str, Any] | None = None

    def started(self, rendered: dict[str, Any]) -> None:
        self.calls.append(("started", rendered))

    def prior_undo(self) -> dict[str, Any] | None:
        return self.undo

    def save_undo(self, record: dict[str, Any]) -> None:
        self.undo = self.undo or record

    def finished(self, status: str, record: dict[str, Any] | None = None, error: str = "") -> None:
        self.calls.append(("finished", (status, record, error)))


def restart_spec(deployment: str = "web") -> StepSpec:
    return StepSpec(
        template="t",
        name="restart",
        action_type="kubernetes",
        action_name="rollout_restart_deployment",
        parameters={"namespace": "demo", "deployment": deployment},
    )


def run(spec: StepSpec, recorder: Recorder, *, can_defer: bool = True, timeout: float = 60) -> Any:
    return run_step(
        spec,
        conf={},
        params={},
        steps={},
        timeout=timeout,
        logger=LOG,
        recorder=recorder,
        can_defer=can_defer,
        poll_interval=0.2,
        _config=KubernautConfig(),
    )


def settled(cluster: SandboxCluster, name: str = "web") -> None:
    cluster.wait_until(
        lambda: (
            ((cluster.get("deployments", "demo", name) or {}).get("status") or {}).get("readyReplicas")
            == (cluster.get("deployments", "demo", name) or {})["spec"]["replicas"]
        )
    )


def test_deferred_step_resumes_to_the_record_a_waiting_step_makes(cluster: SandboxCluster) -> None:
    settled(cluster)
    recorder = Recorder()
    outcome = run(restart_spec(), recorder)
    assert outcome.pending and outcome.wait is not None and outcome.wait.kind == "rollout"
    assert [c[0] for c in recorder.calls] == ["started"]  # not finished: the step is waiting
    assert recorder.undo is not None  # the change was journaled before it was made
    trigger = StepWaitTrigger(wait=outcome.wait.to_dict(), resume=outcome.resume)
    event = fire(as_stored(trigger))
    done = resume_step(
        restart_spec(), event, conf={}, logger=LOG, recorder=recorder, _config=KubernautConfig()
    )
    record = done.record
    assert record["changed"] is True and record["undo"] == recorder.undo
    assert record["wait"] == {
        "what": "rollout of deployment demo/web",
        "status": "done",
        "polls": event["polls"],
        "seconds": round(event["waited"], 1),
        "deferred": True,
    }
    assert recorder.calls[-1] == ("finished", ("success", record, ""))
    # The same step waiting in its own process records the same, but for how it waited.
    settled(cluster, "api")
    in_place = run(restart_spec("api"), Recorder(), can_defer=False).record
    assert in_place["wait"]["deferred"] is False and in_place["wait"]["status"] == "done"
    assert set(in_place) == set(record) and set(in_place["output"]) == set(record["output"])


def test_a_wait_that_timed_out_fails_the_step_on_resume(cluster: SandboxCluster) -> None:
    settled(cluster)
    recorder = Recorder()
    outcome = run(restart_spec(), recorder)
    assert outcome.pending
    event = {
        "status": "timeout",
        "message": "rollout of deployment demo/web not reached within 60s; last seen: {'complete': False}",
        "detail": {"complete": False},
        "polls": 9,
        "waited": 60.0,
        "resume": outcome.resume,
    }
    with pytest.raises(VerificationFailed, match=r"not reached within 60s; last seen: \{'complete': False\}"):
        resume_step(restart_spec(), event, conf={}, logger=LOG, recorder=recorder, _config=KubernautConfig())
    status, _, error = recorder.calls[-1][1]
    assert status == "failed" and error.startswith("VerificationFailed: rollout of deployment demo/web")
    with pytest.raises(StepInputError, match="carries no resume state"):
        resume_step(restart_spec(), {**event, "resume": None}, conf={}, logger=LOG, _config=KubernautConfig())


def test_injected_failure_fires_after_the_deferred_wait(cluster: SandboxCluster) -> None:
    settled(cluster)
    outcome = run(restart_spec(), Recorder())
    event = fire(as_stored(StepWaitTrigger(wait=outcome.wait.to_dict(), resume=outcome.resume)))
    conf = {"inject_failure": {"step": "restart"}}
    with pytest.raises(StepInputError, match="failure injected after the action ran"):
        resume_step(restart_spec(), event, conf=conf, logger=LOG, _config=KubernautConfig())


def test_short_waits_and_steps_with_secrets_wait_in_place(
    cluster: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    settled(cluster)
    # Less than MIN_DEFER_SECONDS left: deferring would cost more than waiting.
    short = run(restart_spec(), Recorder(), timeout=4)
    assert not short.pending and short.record["wait"]["deferred"] is False
    # Secret parameters would travel in the resume state: such a step never defers.
    from airflow.sdk.crypto import get_fernet

    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    get_fernet.cache_clear()
    cluster.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "demo"}, "data": {}}
    )
    settled(cluster, "api")
    spec = StepSpec(
        template="t",
        name="rotate",
        action_type="kubernetes",
        action_name="rotate_secret",
        parameters={
            "namespace": "demo",
            "secret": "db",
            "data": {"password": "s3cret"},
            "consumers": [{"name": "api"}],
        },
    )
    try:
        rotated = run(spec, Recorder())
    finally:
        get_fernet.cache_clear()
    assert not rotated.pending and rotated.record["wait"]["deferred"] is False
    assert rotated.record["wait"]["status"] == "done" and "s3cret" not in str(rotated.record)
