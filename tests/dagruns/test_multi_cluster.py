"""Two sandbox clusters, two Airflow Kubernetes connections (``AIRFLOW_CONN_K8S_A``/``_B``) and a
configuration mapping ``cluster-a``/``cluster-b`` to them; no ``kubernetes_default`` exists.

The intake decides with the real history (PostgreSQL) and hands the conf it would POST to the
run; the run goes through dag.test (operator -> runner -> journal), its wait defers to the
trigger (rebuilt from ``serialize()`` as the triggerer does), and its rollback undoes in the
cluster the change was made in."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import kubernaut.triggers.wait as trigger_module
from kubernaut.actions.base import ActionContext
from kubernaut.clusters import ClusterMap
from kubernaut.config import load_config
from kubernaut.history import History
from kubernaut.intake.decisions import AlertDecision, Decider, Decision, HistoryPort
from kubernaut.intake.history_checks import IntakeHistory
from kubernaut.intake.launcher import Launcher
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Router
from kubernaut.templates import load_templates
from kubernaut.testing.sandbox import KubeSandbox, kube_sandbox
from kubernaut.triggers.wait import StepWaitTrigger
from kubernaut.waits import rollout
from tests.conftest import REPO
from tests.dagruns.test_templates_run import run_dag
from tests.intake.conftest import FakeAirflow, alert
from tests.triggers.conftest import as_stored, fire

T = TypeVar("T")
CONFIG = "clusters: {cluster-a: k8s_a, cluster-b: k8s_b}\n"


@pytest.fixture
def clusters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[KubeSandbox, KubeSandbox]]:
    """Cluster A and cluster B; new pods take 1 s to become Ready (a rollout outlasts a step's
    first look, so its wait defers)."""
    config = tmp_path / "kubernaut.yaml"
    config.write_text(CONFIG)
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(config))
    monkeypatch.delenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", raising=False)
    monkeypatch.setattr(trigger_module, "SETTLE_SECONDS", 0.0)  # the settle has its own test
    with (
        kube_sandbox(tmp_path, conn_id="k8s_a", pod_ready_delay=1.0) as a,
        kube_sandbox(tmp_path, conn_id="k8s_b", pod_ready_delay=1.0) as b,
    ):
        for sandbox in (a, b):  # the deployment controller has seen the seeded deployments
            sandbox.cluster.wait_until(lambda s=sandbox: revision(s) is not None)  # type: ignore[misc]
        yield a, b


def revision(sandbox: KubeSandbox) -> str | None:
    annotations = deployment(sandbox, "api")["metadata"].get("annotations") or {}
    return annotations.get("deployment.kubernetes.io/revision")


@pytest.fixture
def polled(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Each wait a StepWaitTrigger ran: (what, the connection it polled with, how it ended)."""
    seen: list[tuple[str, str, str]] = []
    original = trigger_module.run_wait

    async def recording(spec: Any, clients: Any, **kwargs: Any) -> Any:
        outcome = await original(spec, clients, **kwargs)
        seen.append((spec.what, clients.kube_conn_id, outcome.status))
        return outcome

    monkeypatch.setattr(trigger_module, "run_wait", recording)
    return seen


def intake(airflow: FakeAirflow) -> Launcher:
    """The webhook's decision flow with the real history and the configuration in force."""
    history = IntakeHistory()

    async def run(work: Callable[[HistoryPort], T]) -> T:
        return work(history)

    router = Router(load_templates(REPO / "templates").templates)
    config = load_config()
    return Launcher(Decider(router, config.policy, clusters=ClusterMap.from_config(config)), run, airflow)


async def decide(launcher: Launcher, **labels: str) -> AlertDecision:
    raw = alert(labels.pop("alertname"), fingerprint=secrets.token_hex(8), **labels)
    return await launcher.decide(Alert.model_validate(raw))


def decision_row(d: AlertDecision) -> dict[str, Any]:
    rows = History()._query(
        "SELECT decision, cluster, target_name FROM kubernaut_alert_decisions WHERE fingerprint = %s",
        (d.fingerprint,),
    )
    assert len(rows) == 1, rows
    return rows[0]


def changes(dep: dict[str, Any]) -> tuple[Any, ...]:
    """What a change to a deployment shows in (its status moves on by itself while pods start)."""
    meta = dep["metadata"]
    return meta["generation"], meta.get("annotations"), dep["spec"]


def deployment(sandbox: KubeSandbox, name: str) -> dict[str, Any]:
    dep = sandbox.get("deployments", "demo", name)
    assert dep is not None
    return dep


def test_an_alert_for_cluster_b_changes_b_only_and_its_rollback_undoes_in_b(
    dagbag: Any, clusters: tuple[KubeSandbox, KubeSandbox], polled: list[tuple[str, str, str]]
) -> None:
    a, b = clusters
    a_before = deployment(a, "api")
    airflow = FakeAirflow()
    labels = {"namespace": "demo", "deployment": "api", "cluster": "cluster-b"}
    # dag.test runs the trigger in its own event loop: the intake's coroutine runs in one before.
    d = asyncio.run(decide(intake(airflow), alertname="KubernautRolloutRestart", **labels))
    assert d.decision is Decision.TRIGGERED, d.reason
    assert decision_row(d) == {"decision": "triggered", "cluster": "cluster-b", "target_name": "api"}
    [conf] = airflow.runs.values()
    assert conf["cluster"] == {"name": "cluster-b", "conn_id": "k8s_b"}

    # The restart is made, its rollout waited for in the trigger; then the run fails after it.
    state, run_id, states = run_dag(
        dagbag, "kubernaut_rollout_restart", {**conf, "inject_failure": {"step": "validate-rollout"}}
    )
    assert state == "failed"
    assert states["rollout-restart"] == "success" and states["validate-rollout"] == "failed", states
    assert states["rollback"] == "success", states
    assert ("rollout of deployment demo/api", "k8s_b", "done") in polled
    assert all(conn == "k8s_b" for _, conn, _ in polled), polled

    b_after = deployment(b, "api")
    assert revision(b) not in (None, "1")  # restarted ...
    template_annotations = b_after["spec"]["template"]["metadata"].get("annotations") or {}
    assert "kubectl.kubernetes.io/restartedAt" not in template_annotations  # ... and undone, in B
    assert changes(deployment(a, "api")) == changes(a_before)  # A untouched

    run = History().run(run_id)
    assert run is not None
    assert (run["cluster"], run["kube_conn_id"], run["status"]) == ("cluster-b", "k8s_b", "rolled_back")
    [entry] = run["undo"]
    assert entry["step"] == "rollout-restart" and entry["undo_status"] == "applied"


async def test_an_unknown_cluster_is_decided_no_cluster_and_nothing_is_launched(
    airflow_db: str, clusters: tuple[KubeSandbox, KubeSandbox]
) -> None:
    airflow = FakeAirflow()
    launcher = intake(airflow)
    unknown = await decide(
        launcher, alertname="KubePodCrashLooping", namespace="demo", pod="web-1", cluster="c"
    )
    unlabelled = await decide(launcher, alertname="KubePodCrashLooping", namespace="demo", pod="web-1")
    assert unknown.decision is Decision.NO_CLUSTER and unlabelled.decision is Decision.NO_CLUSTER
    assert "cluster 'c' (label 'cluster') is not configured" in unknown.reason
    assert "no default_cluster is configured" in unlabelled.reason
    assert airflow.calls == [] and airflow.runs == {}  # Airflow not even asked
    assert decision_row(unknown) == {"decision": "no_cluster", "cluster": "c", "target_name": "web-1"}
    assert decision_row(unlabelled)["decision"] == "no_cluster"


async def test_the_same_pod_name_in_two_clusters_is_two_targets(
    airflow_db: str, clusters: tuple[KubeSandbox, KubeSandbox]
) -> None:
    airflow = FakeAirflow()
    launcher = intake(airflow)
    pod = f"web-{secrets.token_hex(4)}"
    labels = {"alertname": "KubePodCrashLooping", "namespace": "demo", "pod": pod}
    first_a = await decide(launcher, **labels, cluster="cluster-a")
    first_b = await decide(launcher, **labels, cluster="cluster-b")
    again_a = await decide(launcher, **labels, cluster="cluster-a")
    assert first_a.decision is Decision.TRIGGERED and first_b.decision is Decision.TRIGGERED, first_b.reason
    assert again_a.decision is Decision.BUSY and first_a.dag_run_id in again_a.reason
    assert sorted(c["cluster"]["name"] for c in airflow.runs.values()) == ["cluster-a", "cluster-b"]


def test_a_deferred_wait_for_cluster_b_polls_b(clusters: tuple[KubeSandbox, KubeSandbox]) -> None:
    """The trigger as the triggerer rebuilds it from the database (serialize, serde, classpath)
    keeps the connection: a rollout wait for a deployment only B has ends done from B; the same
    wait with A's connection cannot find it."""
    a, b = clusters
    assert b.get("deployments", "demo", "web") is not None
    a.cluster.delete("deployments", "demo", "web")
    a.cluster.wait_until(lambda: a.get("deployments", "demo", "web") is None)
    args = {"targets": [rollout.target("Deployment", "demo", "web")]}
    wait = ActionContext(timeout=30.0).wait("rollout", args, what="rollout of deployment demo/web")
    for_b = StepWaitTrigger(wait=wait.to_dict(), kube_conn_id="k8s_b", resume={"version": 1})
    stored = as_stored(for_b)
    assert stored.serialize()[1]["kube_conn_id"] == "k8s_b"
    event = fire(stored)
    assert event["status"] == "done", event

    short = ActionContext(timeout=3.0).wait("rollout", args, what="rollout of deployment demo/web")
    event = fire(as_stored(StepWaitTrigger(wait=short.to_dict(), kube_conn_id="k8s_a")))
    assert event["status"] != "done" and "not found" in event["message"], event
