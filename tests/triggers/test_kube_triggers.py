"""StepWaitTrigger against the sandbox cluster, run as the triggerer runs it: built from its
serialised form, polling with the cncf-kubernetes provider's AsyncKubernetesHook."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from kubernaut.actions import ActionResult, registry
from kubernaut.sandbox import SandboxCluster
from kubernaut.testing import make_context
from kubernaut.triggers.wait import CLASSPATH, StepWaitTrigger
from kubernaut.waits.clients import WaitClients
from kubernaut.waits.spec import WaitSpec
from tests.triggers.conftest import as_stored, fire

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def start(action: str, **params: Any) -> ActionResult:
    """What a step does before it defers: policy, pre-check, run (the change, once)."""
    cls = registry.get("kubernetes", action)
    return cls().start(
        make_context(poll_interval=0.2, max_poll_interval=0.5), cls.Params.model_validate(params)
    )


def deployment(cluster: SandboxCluster, name: str) -> dict[str, Any]:
    found = cluster.get("deployments", "demo", name)
    assert found is not None
    return found


def test_serialize_round_trip() -> None:
    wait = WaitSpec("rollout", {"targets": []}, deadline=time.time() + 60, poll=0.5, max_poll=10, what="w")
    trigger = StepWaitTrigger(wait=wait.to_dict(), kube_conn_id="k8s_prod", resume={"version": 1, "x": [1]})
    again = as_stored(trigger)
    assert type(again) is StepWaitTrigger and again.serialize() == trigger.serialize()
    assert trigger.serialize()[0] == CLASSPATH and again.wait == wait and again.kube_conn_id == "k8s_prod"
    with pytest.raises(ValueError, match=r"wait\.kind: expected a non-empty string"):
        StepWaitTrigger(wait={**wait.to_dict(), "kind": ""})


def test_triggerer_restart_mid_wait_runs_the_wait_again_and_repeats_no_change(
    cluster: SandboxCluster,
) -> None:
    cluster.wait_until(lambda: (deployment(cluster, "web").get("status") or {}).get("readyReplicas") == 3)
    result = start("rollout_restart_deployment", namespace="demo", deployment="web")
    assert result.wait is not None and result.wait.kind == "rollout"
    stamped = deployment(cluster, "web")["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    trigger = StepWaitTrigger(wait=result.wait.to_dict(), resume={"version": 1, "result": result.to_dict()})

    async def killed_mid_wait() -> bool:
        task = asyncio.ensure_future(anext(as_stored(trigger).run()))
        await asyncio.sleep(1.0)
        running = not task.done()
        task.cancel()  # the triggerer dies: its triggers are cancelled, nothing is reported
        return running

    assert asyncio.run(killed_mid_wait()), "the rollout was over before the triggerer went away"
    event = fire(as_stored(trigger))  # another triggerer picks the trigger up from the database
    assert event["status"] == "done" and event["detail"]["complete"] is True and event["polls"] >= 2
    assert event["resume"] == {"version": 1, "result": result.to_dict()}  # handed back untouched
    dep = deployment(cluster, "web")
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"  # one change
    assert dep["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == stamped


def test_rollout_that_does_not_complete_times_out_with_what_was_seen(cluster: SandboxCluster) -> None:
    cluster.inject_fault("crashloop", namespace="demo", deployment="api")
    cluster.wait_until(
        lambda: any(
            (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
            for p in cluster.list("pods", "demo", labels={"app": "api"})
            for s in p.get("status", {}).get("containerStatuses", [])
        )
    )
    wait = WaitSpec(
        "rollout",
        {"targets": [{"kind": "Deployment", "namespace": "demo", "name": "api", "replicas": None}]},
        deadline=time.time() + 3,
        poll=0.2,
        what="rollout of deployment demo/api",
    )
    event = fire(StepWaitTrigger(wait=wait.to_dict()))
    assert event["status"] == "timeout" and event["detail"]["complete"] is False
    assert event["message"].startswith("rollout of deployment demo/api not reached within 3s; last seen: {")
    missing = {
        **wait.to_dict(),
        "args": {"targets": [{"kind": "Deployment", "namespace": "demo", "name": "gone"}]},
    }
    event = fire(StepWaitTrigger(wait=missing))
    assert event["status"] == "error" and event["message"].endswith("deployment demo/gone not found")


def test_drain_wait_retries_evictions_a_budget_refused(cluster: SandboxCluster) -> None:
    """The one wait that writes: an eviction a PodDisruptionBudget refused (429) is retried from
    the trigger, uid-guarded, until the budget allows it; then the wait sees the pods gone."""
    cluster.wait_until(lambda: (deployment(cluster, "web").get("status") or {}).get("readyReplicas") == 3)
    cluster.apply(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}},
        }
    )
    node = next(p["spec"]["nodeName"] for p in cluster.list("pods", "demo", labels={"app": "web"}))
    result = start("drain_node", node=node)
    assert result.wait is not None and result.output["blocked_by_pdb"]
    blocked = set(result.output["blocked_by_pdb"])
    threading.Timer(1.5, lambda: cluster.delete("poddisruptionbudgets", "demo", "web")).start()
    event = fire(as_stored(StepWaitTrigger(wait=result.wait.to_dict())))
    assert event["status"] == "done", event
    assert set(event["detail"]["evicted_while_waiting"]) == blocked and event["detail"]["left"] == []
    on_node = [p for p in cluster.list("pods", None) if p["spec"].get("nodeName") == node]
    assert not {f"demo/{p['metadata']['name']}" for p in on_node} & blocked


def test_waits_in_one_event_loop_share_one_kubernetes_client(cluster: SandboxCluster) -> None:
    """The triggerer runs every trigger in one event loop: its waits share a client per
    connection (each would otherwise build its own TLS context), the last one closes it."""
    from kubernaut.waits import clients
    from kubernaut.waits.kube import read

    async def main() -> None:
        a, b = WaitClients.in_triggerer("kubernetes_default"), WaitClients.in_triggerer("kubernetes_default")
        shared = await a.kube()
        assert await b.kube() is shared and len(clients._SHARED) == 1
        await a.reset_kube()  # a saw a 401: it builds a new client, b keeps the old one for now
        fresh = await a.kube()
        assert fresh is not shared and not shared.rest_client.pool_manager.closed
        assert (await read(b, "Deployment", "demo", "web")).metadata.name == "web"
        await b.close()
        assert shared.rest_client.pool_manager.closed  # its last user let go
        assert (await read(a, "Deployment", "demo", "api")).metadata.name == "api"
        await a.close()
        assert fresh.rest_client.pool_manager.closed and clients._SHARED == {}

    asyncio.run(main())


def test_concurrent_reads_of_one_wait_hold_its_shared_client_once(cluster: SandboxCluster) -> None:
    """The assessment gathers its evidence concurrently (target health, drift) through one
    set of clients: both ask for the Kubernetes client at once; closing it must still let the
    shared client go (it leaked, open, once per assessment)."""
    from kubernaut.waits import clients
    from kubernaut.waits.kube import read

    async def main() -> None:
        waits = WaitClients.in_triggerer("kubernetes_default")
        first, second = await asyncio.gather(waits.kube(), waits.kube())
        assert first is second
        names = await asyncio.gather(
            read(waits, "Deployment", "demo", "web"), read(waits, "Deployment", "demo", "api")
        )
        assert [d.metadata.name for d in names] == ["web", "api"]
        await waits.close()
        assert first.rest_client.pool_manager.closed and clients._SHARED == {}

    asyncio.run(main())
