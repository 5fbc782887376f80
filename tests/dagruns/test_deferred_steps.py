"""Waiting steps defer under dag.test (which runs each trigger in line, as Airflow 3's dag.test
does): the step's wait runs in StepWaitTrigger, execute_complete finishes and records it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kubernaut.triggers.wait as trigger_module
from kubernaut.history import History
from kubernaut.sandbox import SandboxCluster
from kubernaut.waits.spec import WaitOutcome
from tests.conftest import connected_sandbox
from tests.dagruns.test_templates_run import alert, crashing, oom_killed, pods, run_dag, settle, xcom


@pytest.fixture
def slow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxCluster]:
    """New pods take 1.5 s to become Ready: a rollout outlasts the step's first look."""
    with connected_sandbox(tmp_path, monkeypatch, pod_ready_delay=1.5) as sandbox:
        yield sandbox


@pytest.fixture
def fired(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, WaitOutcome]]:
    """Each wait a StepWaitTrigger ran, with how it ended."""
    seen: list[tuple[str, WaitOutcome]] = []
    original = trigger_module.run_wait

    async def recording(spec: Any, clients: Any, **kwargs: Any) -> WaitOutcome:
        outcome = await original(spec, clients, **kwargs)
        seen.append((spec.what, outcome))
        return outcome

    monkeypatch.setattr(trigger_module, "run_wait", recording)
    return seen


def test_rollout_restart_waits_in_the_trigger(
    dagbag: Any, slow: SandboxCluster, fired: list[tuple[str, WaitOutcome]]
) -> None:
    settle(slow, "api", 2)
    state, run_id, states = run_dag(
        dagbag, "kubernaut_rollout_restart", alert("KubernautRolloutRestart", deployment="api")
    )
    assert state == "success", states
    assert ("rollout of deployment demo/api", "done") in [(what, o.status) for what, o in fired]
    record = xcom("kubernaut_rollout_restart", run_id, "rollout-restart")
    assert record["wait"]["deferred"] is True and record["wait"]["status"] == "done"
    assert record["changed"] is True and record["undo"] == {"restartedAt": None, "generation": 1}
    dep = slow.get("deployments", "demo", "api")
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"  # changed once
    run = History().run(run_id)
    assert run is not None and run["status"] == "success"
    step = {s["step"]: s for s in run["steps"]}["rollout-restart"]
    assert step["status"] == "success" and step["result"]["wait"]["deferred"] is True


def test_a_deferred_wait_that_times_out_fails_the_step_and_the_run_rolls_back(
    dagbag: Any, slow: SandboxCluster, fired: list[tuple[str, WaitOutcome]]
) -> None:
    """The pod-crash template restarts the alerting pod, whose replacement is OOM-killed too:
    validate-recovery's wait, in the trigger, ends with a timeout and fails the step."""
    settle(slow, "web", 3)
    slow.inject_fault("oom", namespace="demo", deployment="web", memory="100Mi")
    dep = slow.get("deployments", "demo", "web")
    dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "64Mi"
    dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = "64Mi"
    slow.apply(dep)
    slow.wait_until(lambda: sum(map(crashing, pods(slow, "web"))) == 3, timeout=30)
    victim = next(p for p in pods(slow, "web") if crashing(p))["metadata"]["name"]
    conf = {
        **alert("KubePodCrashLooping", pod=victim, container="web"),
        "params": {"wait_timeout": "8s", "stable_for": "1s"},
    }
    state, run_id, states = run_dag(dagbag, "kubernaut_pod_crash_recovery", conf)
    assert state == "failed"
    assert states["restart-pod"] == "success" and states["validate-recovery"] == "failed", states
    assert states["rollback"] in ("success", "failed") and states["finalize"] == "failed"
    waits = {what: o for what, o in fired}
    health = next(o for what, o in waits.items() if what.startswith(f"pod demo/{victim} "))
    assert health.status == "timeout" and "OOMKilled" in health.message
    run = History().run(run_id)
    assert run is not None
    step = {s["step"]: s for s in run["steps"]}["validate-recovery"]
    assert step["status"] == "failed" and "not reached within 8s" in step["error"]
    assert any(oom_killed(p) for p in pods(slow, "web"))
