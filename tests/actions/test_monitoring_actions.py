"""Monitoring actions wait for health, bounded by their own wait_timeout."""

from __future__ import annotations

import datetime
import logging
import threading
import time
from typing import Any

import pytest

from kubernaut.actions import ActionContext, VerificationFailed, registry
from kubernaut.config import KubernautConfig
from kubernaut.operators.runner import StepSpec, run_step
from kubernaut.sandbox import SandboxCluster
from kubernaut.templates.loader import load_templates
from tests.actions.test_kubernetes_actions import pods_of, ready, wait_all_ready
from tests.conftest import REPO


def run(ctx: ActionContext, action: str, /, **params: Any) -> Any:
    cls = registry.get("monitoring", action)
    return cls().execute(ctx, cls.Params.model_validate(params))


def assess(ctx: ActionContext, pod: str) -> dict[str, Any]:
    """What the templates' assess-pod-state step records (get_pod_status)."""
    cls = registry.get("kubernetes", "get_pod_status")
    output: dict[str, Any] = cls().execute(ctx, cls.Params(namespace="demo", pod=pod)).output
    return output


def crashing(pod: dict[str, Any]) -> bool:
    return any(
        (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
        for s in pod.get("status", {}).get("containerStatuses", [])
    )


def crashloop_web(cluster: SandboxCluster) -> dict[str, Any]:
    """All web pods crash-loop; returns the youngest, so no sibling is created after it."""
    wait_all_ready(cluster, "web", 3)
    cluster.inject_fault("crashloop", namespace="demo", deployment="web")
    cluster.wait_until(lambda: all(map(crashing, pods_of(cluster, "web"))))
    return max(pods_of(cluster, "web"), key=lambda p: p["metadata"]["creationTimestamp"])


def next_second(created: str) -> None:
    """Timestamps have whole seconds: wait until the API's clock is past ``created``, so what
    is seen from now on is seen after that pod was created (it is older than the look)."""
    stamp = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    while datetime.datetime.now(datetime.UTC).replace(microsecond=0) <= stamp:
        time.sleep(0.05)


def delete_and_wait_for_replacement(cluster: SandboxCluster, pod: dict[str, Any]) -> dict[str, Any]:
    before = {p["metadata"]["uid"] for p in pods_of(cluster, "web")}
    cluster.delete("pods", "demo", pod["metadata"]["name"])
    cluster.wait_until(lambda: len(pods_of(cluster, "web")) == 3)
    [new] = [p for p in pods_of(cluster, "web") if p["metadata"]["uid"] not in before]
    return new


def test_validate_pod_health_accepts_a_ready_replacement(cluster: SandboxCluster, ctx: ActionContext) -> None:
    pod = wait_all_ready(cluster, "web", 3)[0]["metadata"]["name"]
    cluster.delete("pods", "demo", pod)
    result = run(ctx, "validate_pod_health", namespace="demo", pod=pod, wait_timeout="10s", stable_for="0s")
    assert result.output["healthy"] is True and result.output["replacement"] is True
    assert result.output["pod"]["name"] != pod and result.output["pod"]["ready"] is True


def test_ready_siblings_do_not_pass_for_a_crash_looping_alerting_pod(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    alerting = crashloop_web(cluster)
    for sibling in pods_of(cluster, "web"):
        if sibling["metadata"]["uid"] != alerting["metadata"]["uid"]:
            cluster.delete("pods", "demo", sibling["metadata"]["name"])  # replaced by healthy pods
    cluster.wait_until(lambda: sum(map(ready, pods_of(cluster, "web"))) == 2)
    name = alerting["metadata"]["name"]
    assert crashing(cluster.get("pods", "demo", name) or {})
    with pytest.raises(VerificationFailed, match=f"pod demo/{name} .* not reached within 2s") as failure:
        run(ctx, "validate_pod_health", namespace="demo", pod=name, wait_timeout="2s", stable_for="0s")
    assert "CrashLoopBackOff" in str(failure.value) and "'replacement': False" in str(failure.value)


def test_the_ready_replacement_of_the_deleted_alerting_pod_passes(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    alerting = crashloop_web(cluster)
    name = alerting["metadata"]["name"]
    next_second(alerting["metadata"]["creationTimestamp"])  # the siblings are older than this look
    assessed = assess(ctx, name)
    replacement = delete_and_wait_for_replacement(cluster, alerting)
    started = time.monotonic()
    result = run(
        ctx,
        "validate_pod_health",
        namespace="demo",
        pod=name,
        pod_uid=assessed["uid"],
        since=assessed["observedAt"],
        wait_timeout="10s",
        stable_for="1s",
    )
    out = result.output
    assert out["replacement"] is True and out["pod"]["name"] == replacement["metadata"]["name"]
    # The older siblings still crash-loop: they are not the alerting pod's replacement.
    assert out["replacements"] == [replacement["metadata"]["name"]]
    assert sum(map(crashing, pods_of(cluster, "web"))) == 2
    assert out["steadyFor"][replacement["metadata"]["name"]] >= 1 and time.monotonic() - started >= 1
    assert out["since"] == assessed["observedAt"] >= alerting["metadata"]["creationTimestamp"]


def test_a_crash_looping_replacement_fails_even_beside_a_ready_pod(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    alerting = crashloop_web(cluster)
    name = alerting["metadata"]["name"]
    next_second(alerting["metadata"]["creationTimestamp"])
    assessed = assess(ctx, name)
    replacement = delete_and_wait_for_replacement(cluster, alerting)
    # A second crashloop takes the pods that exist now, the replacement among them ...
    cluster.inject_fault("crashloop", namespace="demo", deployment="web")
    new_name = replacement["metadata"]["name"]
    cluster.wait_until(lambda: crashing(cluster.get("pods", "demo", new_name) or {}))
    # ... while a sibling's own replacement is Ready.
    sibling = next(p for p in pods_of(cluster, "web") if p["metadata"]["name"] != new_name)
    delete_and_wait_for_replacement(cluster, sibling)
    cluster.wait_until(lambda: sum(map(ready, pods_of(cluster, "web"))) == 1)
    with pytest.raises(VerificationFailed, match="not reached within 2s") as failure:
        run(
            ctx,
            "validate_pod_health",
            namespace="demo",
            pod=name,
            pod_uid=assessed["uid"],
            since=assessed["observedAt"],
            wait_timeout="2s",
            stable_for="0s",
        )
    assert new_name in str(failure.value) and "'replacement': True" in str(failure.value)


def test_validate_pod_health_times_out_on_crashloop(cluster: SandboxCluster, ctx: ActionContext) -> None:
    pod = wait_all_ready(cluster, "web", 3)[0]["metadata"]["name"]
    cluster.inject_fault("crashloop", namespace="demo", deployment="web")
    cluster.wait_until(lambda: not any(map(ready, pods_of(cluster, "web"))))
    started = time.monotonic()
    with pytest.raises(VerificationFailed, match="not reached within 1s"):
        run(ctx, "validate_pod_health", namespace="demo", pod=pod, wait_timeout="1s", stable_for="0s")
    assert time.monotonic() - started < 5


def test_validate_pod_health_parameters_are_checked() -> None:
    cls = registry.get("monitoring", "validate_pod_health")
    with pytest.raises(ValueError, match=r"stable_for \(30s\) must be shorter than wait_timeout \(10s\)"):
        cls.Params.model_validate({"namespace": "demo", "pod": "p", "wait_timeout": "10s"})
    with pytest.raises(ValueError, match="needs a time zone"):
        cls.Params.model_validate({"namespace": "demo", "pod": "p", "since": "2025-01-01T00:00:00"})
    blank = cls.Params.model_validate({"namespace": "demo", "pod": "p", "pod_uid": "", "since": " "})
    assert blank.pod_uid is None and blank.since is None  # what a template renders for "unknown"


# --- the pod-crash template's validation, rendered and run by the step runner ---

TEMPLATE = next(t for t in load_templates(REPO / "templates").templates if t.name == "pod-crash-recovery")


def run_template_step(step_name: str, alert: dict[str, Any], steps: dict[str, Any], **params: Any) -> Any:
    step = next(s for s in TEMPLATE.steps if s.name == step_name)
    spec = StepSpec(
        template=TEMPLATE.name,
        name=step.name,
        action_type=step.action.type,
        action_name=step.action.action,
        parameters=dict(step.action.parameters),
        conditions=list(step.conditions),
    )
    return run_step(
        spec,
        conf={"alert": alert},
        params=TEMPLATE.resolve_params(params),
        steps=steps,
        timeout=30,
        logger=logging.getLogger("test"),
        poll_interval=0.1,
        _config=KubernautConfig(),
    )


@pytest.mark.parametrize("restarted", [True, False], ids=["replacement-ready", "not-restarted"])
def test_pod_crash_template_validation_through_the_runner(cluster: SandboxCluster, restarted: bool) -> None:
    alerting = crashloop_web(cluster)
    name = alerting["metadata"]["name"]
    alert = {"labels": {"alertname": "KubePodCrashLooping", "namespace": "demo", "pod": name}}
    next_second(alerting["metadata"]["creationTimestamp"])
    assessed = run_template_step("assess-pod-state", alert, {}).record["output"]
    if restarted:  # what restart-pod does (it needs the history database for its undo journal)
        delete_and_wait_for_replacement(cluster, alerting)
    else:  # the siblings are restarted instead and become Ready: the alerting pod is not
        for sibling in pods_of(cluster, "web"):
            if sibling["metadata"]["name"] != name:
                delete_and_wait_for_replacement(cluster, sibling)
        cluster.wait_until(lambda: sum(map(ready, pods_of(cluster, "web"))) == 2)
    steps = {"assess-pod-state": assessed}
    if not restarted:
        with pytest.raises(VerificationFailed, match=f"pod demo/{name} "):
            run_template_step("validate-recovery", alert, steps, wait_timeout="3s", stable_for="1s")
        return
    record = run_template_step("validate-recovery", alert, steps, wait_timeout="10s", stable_for="1s").record
    assert record["parameters"]["pod_uid"] == assessed["uid"]
    assert record["parameters"]["since"] == assessed["observedAt"]
    assert record["output"]["replacement"] is True and record["output"]["pod"]["ready"] is True


def test_validate_deployment_ready(cluster: SandboxCluster, ctx: ActionContext) -> None:
    wait_all_ready(cluster, "api", 2)
    result = run(ctx, "validate_deployment_ready", namespace="demo", deployment="api", wait_timeout="5s")
    assert result.output["complete"] is True and result.output["readyPods"] == 2
    cluster.inject_fault("crashloop", namespace="demo", deployment="api")
    cluster.wait_until(lambda: not any(map(ready, pods_of(cluster, "api"))))
    with pytest.raises(VerificationFailed, match="rollout of deployment demo/api"):
        run(ctx, "validate_deployment_ready", namespace="demo", deployment="api", wait_timeout="1s")


# --- validate_no_oom_kills ---


def _set_memory(cluster: SandboxCluster, memory: str) -> None:
    dep = cluster.get("deployments", "demo", "api")
    assert dep is not None
    dep["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "50m", "memory": memory},
        "limits": {"memory": memory},
    }
    cluster.apply(dep)


def test_validate_no_oom_kills_passes_once_the_limit_covers_the_need(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    wait_all_ready(cluster, "api", 2)
    cluster.inject_fault("oom", namespace="demo", deployment="api", memory="400Mi")
    _set_memory(cluster, "512Mi")
    started = time.monotonic()
    result = run(
        ctx, "validate_no_oom_kills", namespace="demo", name="api", observe="1500ms", wait_timeout="10s"
    )
    assert time.monotonic() - started >= 1.5
    out = result.output
    assert out["healthy"] is True and out["oomKilled"] == [] and out["observedFor"] >= 1.5
    assert len(out["restarts"]) == 2 and set(out["restarts"].values()) == {0}


def test_validate_no_oom_kills_fails_when_the_new_pods_still_run_out(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    wait_all_ready(cluster, "api", 2)
    cluster.inject_fault("oom", namespace="demo", deployment="api", memory="600Mi")
    _set_memory(cluster, "512Mi")  # more, but still not enough: the rollout never completes
    with pytest.raises(VerificationFailed, match="rollout of deployment demo/api not reached within 2s"):
        run(ctx, "validate_no_oom_kills", namespace="demo", name="api", observe="1s", wait_timeout="2s")


def test_validate_no_oom_kills_fails_fast_on_an_oom_kill_during_the_watch(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    wait_all_ready(cluster, "api", 2)
    # The rollout completes at once (nothing changes); the fault then kills the pods within the window.
    later = threading.Timer(0.5, lambda: cluster.inject_fault("oom", namespace="demo", deployment="api"))
    later.start()
    started = time.monotonic()
    with pytest.raises(
        VerificationFailed, match=r"OOMKilled again after the rollout: container api of pod api-"
    ):
        run(ctx, "validate_no_oom_kills", namespace="demo", name="api", observe="15s", wait_timeout="5s")
    later.join()
    assert time.monotonic() - started < 10  # failed as soon as it was seen, not after the window
