"""Symptom suppression through the intake's HTTP path: the real history (PostgreSQL), a real
Alertmanager (its API as a root-cause source), the sandbox cluster over HTTP (each pod's node
and owner) with a node made NotReady the way the node controller does it (status patch), and a
stand-in Airflow REST API that records the runs it is asked for."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kubernaut.config import KubernautConfig, parse_config
from kubernaut.intake.cli import route_main
from kubernaut.live_stack import Alertmanager, am_alert
from kubernaut.local_stack import free_port
from kubernaut.testing.sandbox import KubeSandbox, kube_sandbox
from tests.conftest import REPO
from tests.intake.intake_server import IntakeServer, history_database, intake_server, webhook_alert

# the node templates answering KubeNodeNotReady (the learned choice picks one of them)
NODE_DAGS = {"kubernaut_node_not_ready", "kubernaut_node_not_ready_replace"}
# No backoff: this module is about suppression only.
CONFIG: KubernautConfig = parse_config({"blocking": {"backoff": {"base": 0}}}, "test")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeSandbox]:
    with kube_sandbox(tmp_path_factory.mktemp("sandbox")) as sb:
        core = client.CoreV1Api(sb.api_client())
        deadline = time.monotonic() + 30
        while len([p for p in core.list_namespaced_pod("demo").items if p.spec.node_name]) < 5:
            assert time.monotonic() < deadline, "demo pods not scheduled"
            time.sleep(0.1)
        yield sb


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    # Its own webhook goes nowhere: the tests post to the intake themselves, in a known order.
    am = Alertmanager(tmp_path_factory.mktemp("am"), f"http://127.0.0.1:{free_port()}/nowhere").start()
    try:
        yield am
    finally:
        am.stop()


@pytest.fixture(scope="module")
def server(sandbox: KubeSandbox, alertmanager: Alertmanager) -> Iterator[IntakeServer]:
    # Alertmanager reached the production way: the configured Airflow connection.
    previous = os.environ.get("AIRFLOW_CONN_ALERTMANAGER_DEFAULT")
    os.environ["AIRFLOW_CONN_ALERTMANAGER_DEFAULT"] = json.dumps(
        {"conn_type": "http", "host": alertmanager.url}
    )
    try:
        with history_database("kn_suppress") as uri, intake_server(uri, REPO / "templates", CONFIG) as srv:
            yield srv
    finally:
        if previous is None:
            os.environ.pop("AIRFLOW_CONN_ALERTMANAGER_DEFAULT", None)
        else:
            os.environ["AIRFLOW_CONN_ALERTMANAGER_DEFAULT"] = previous


def pods_on(sb: KubeSandbox, node: str) -> list[tuple[str, str]]:
    """(pod, app) of the demo pods bound to ``node``."""
    core = client.CoreV1Api(sb.api_client())
    return sorted(
        (p.metadata.name, p.metadata.labels.get("app", ""))
        for p in core.list_namespaced_pod("demo").items
        if p.spec.node_name == node and p.metadata.deletion_timestamp is None
    )


def set_node_ready(sb: KubeSandbox, node: str, ready: bool) -> None:
    """What the node controller writes when the kubelet stops (or resumes) posting its status."""
    condition = (
        {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
        }
        if ready
        else {
            "type": "Ready",
            "status": "Unknown",
            "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.",
        }
    )
    client.CoreV1Api(sb.api_client()).patch_node_status(node, {"status": {"conditions": [condition]}})


def pod_alert(pod: str) -> dict[str, Any]:
    return webhook_alert("KubePodNotReady", {"namespace": "demo", "pod": pod, "severity": "warning"})


def by_target(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["target"]["name"]: d for d in answer["decisions"]}


def test_node_unreachable_one_node_remediation_no_pod_restarts(
    server: IntakeServer, sandbox: KubeSandbox
) -> None:
    node = "sandbox-node-1"
    pods = pods_on(sandbox, node)
    assert len({app for _, app in pods}) == 2, pods  # pods of two workloads (web, api) on the node
    set_node_ready(sandbox, node, False)
    try:
        # The symptoms come first in the payload; the cause is in the same payload.
        node_alert = webhook_alert("KubeNodeUnreachable", {"node": node, "severity": "warning"})
        answer = server.post(*[pod_alert(p) for p, _ in pods], node_alert)
        decided = by_target(answer)
        assert decided[node]["decision"] == "triggered", decided[node]
        for pod, _ in pods:
            d = decided[pod]
            assert d["decision"] == "suppressed", d
            assert d["root_cause"]["alertname"] == "KubeNodeUnreachable"
            assert d["root_cause"]["node"] == node and d["root_cause"]["source"] == "payload"
            assert f"symptom of node {node}" in d["reason"] and "KubeNodeUnreachable" in d["reason"]
        # One run: the node's remediation; no pod restart was asked for.
        [node_run] = [server.airflow.runs[r]["dag_id"] for r in server.airflow.runs]  # one node remediation
        assert node_run in NODE_DAGS
        recorded = server.rows(
            "SELECT target_name, decision, reason FROM kubernaut_alert_decisions WHERE target_kind = 'Pod'"
        )
        assert sorted((name, decision) for name, decision, _ in recorded) == sorted(
            (p, "suppressed") for p, _ in pods
        )
        assert all("KubeNodeUnreachable" in reason for _, _, reason in recorded)

        # Later, a pod alert on its own: the node alert the intake saw recently is the cause.
        later = by_target(server.post(pod_alert(pods[0][0])))[pods[0][0]]
        assert later["decision"] == "suppressed" and later["root_cause"]["source"] == "history", later

        # The node alert resolves: its pods' alerts are no longer symptoms of it.
        resolved = {**node_alert, "status": "resolved", "endsAt": datetime.now(UTC).isoformat()}
        assert by_target(server.post(resolved))[node]["decision"] == "resolved"
        after = by_target(server.post(pod_alert(pods[0][0])))[pods[0][0]]
        assert after["decision"] == "triggered", after
    finally:
        set_node_ready(sandbox, node, True)


def test_a_node_alert_active_in_alertmanager_suppresses_its_pods(
    server: IntakeServer, sandbox: KubeSandbox, alertmanager: Alertmanager
) -> None:
    node = "sandbox-node-2"
    pod = pods_on(sandbox, node)[0][0]
    starts = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    alertmanager.post_alerts(
        [am_alert({"alertname": "KubeNodeNotReady", "node": node, "severity": "warning"}, starts)]
    )
    deadline = time.monotonic() + 30
    while not alertmanager.alerts():
        assert time.monotonic() < deadline, "Alertmanager did not take the alert"
        time.sleep(0.2)
    try:
        d = by_target(server.post(pod_alert(pod)))[pod]
        assert d["decision"] == "suppressed", d
        assert (
            d["root_cause"]["source"] == "alertmanager" and d["root_cause"]["alertname"] == "KubeNodeNotReady"
        )
        assert not [r for r in server.airflow.runs if pod in json.dumps(server.airflow.runs[r]["conf"])]
    finally:
        ended = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        alert = am_alert({"alertname": "KubeNodeNotReady", "node": node, "severity": "warning"}, starts)
        alertmanager.post_alerts([{**alert, "endsAt": ended}])


def test_a_pod_whose_owner_is_being_remediated_is_suppressed(
    server: IntakeServer, sandbox: KubeSandbox
) -> None:
    pods = [p for p, app in pods_on(sandbox, "sandbox-node-2") if app == "web"]
    history = server.history()
    run_id = history.ensure_run(
        "kubernaut_deployment_replica_mismatch",
        "alert__owner0000000000__20260101T000000",
        "deployment-replica-mismatch",
        {
            "name": "KubeDeploymentReplicasMismatch",
            "kind": "Deployment",
            "namespace": "demo",
            "resource": "web",
        },
        False,
    )
    try:
        d = by_target(server.post(pod_alert(pods[0])))[pods[0]]
        assert d["decision"] == "suppressed", d
        assert d["root_cause"] == {
            "kind": "owner_run",
            "owner": {"kind": "Deployment", "namespace": "demo", "name": "web"},
            "dag_run_id": "alert__owner0000000000__20260101T000000",
            "alertname": "KubeDeploymentReplicasMismatch",
        }
        assert "Deployment/demo/web" in d["reason"]
    finally:
        history.finish_run(run_id, "success")
        history.close()


def test_route_checks_the_same_offline_with_a_kubeconfig(
    sandbox: KubeSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = "sandbox-node-1"
    pod = pods_on(sandbox, node)[0][0]
    other = pods_on(sandbox, "sandbox-node-2")[0][0]
    payload = {
        "version": "4",
        "status": "firing",
        "alerts": [
            pod_alert(pod),
            pod_alert(other),
            webhook_alert("KubeNodeNotReady", {"node": node}),
        ],
    }
    (tmp_path / "payload.json").write_text(json.dumps(payload))
    args = [
        "--alerts",
        str(tmp_path / "payload.json"),
        "--templates",
        str(REPO / "templates"),
        "--history",
        "off",
    ]
    assert route_main([*args, "--kubeconfig", str(sandbox.kubeconfig)]) == 0
    decided = {d["target"]["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert decided[pod]["decision"] == "suppressed" and decided[pod]["root_cause"]["node"] == node
    assert decided[other]["decision"] == "triggered"  # its node has no alert
    assert route_main(args) == 0  # without a cluster: routing alone, nothing suppressed
    assert {d["decision"] for d in json.loads(capsys.readouterr().out)} == {"triggered"}


def deployment_pods(sb: KubeSandbox, name: str, replicas: int = 2) -> list[str]:
    """A Deployment of its own (its pods owned through a ReplicaSet, as the controllers make
    them), so no other test's runs or launches are about it; its scheduled pods' names."""
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "demo", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": f"ghcr.io/example/{name}:1.0"}]},
            },
        },
    }
    client.AppsV1Api(sb.api_client()).create_namespaced_deployment("demo", body)
    core = client.CoreV1Api(sb.api_client())
    deadline = time.monotonic() + 30
    while True:
        pods = [
            p.metadata.name
            for p in core.list_namespaced_pod("demo", label_selector=f"app={name}").items
            if p.spec.node_name and p.metadata.deletion_timestamp is None
        ]
        if len(pods) == replicas:
            return sorted(pods)
        assert time.monotonic() < deadline, f"pods of {name} not scheduled: {pods}"
        time.sleep(0.1)


def crash_loop_alert(pod: str, **labels: str) -> dict[str, Any]:
    return webhook_alert(
        "KubePodCrashLooping",
        {"namespace": "demo", "pod": pod, "container": "app", "severity": "warning", **labels},
    )


def rollout_stuck_alert(deployment: str) -> dict[str, Any]:
    return webhook_alert(
        "KubeDeploymentRolloutStuck", {"namespace": "demo", "deployment": deployment, "severity": "warning"}
    )


def test_a_pod_crash_loop_while_its_deployment_is_remediated_names_that_alert(
    server: IntakeServer, sandbox: KubeSandbox
) -> None:
    pods = deployment_pods(sandbox, "cart")
    stuck = rollout_stuck_alert("cart")
    launched = by_target(server.post(stuck))["cart"]
    assert launched["decision"] == "triggered", launched
    # The run was launched (the stand-in Airflow has it) and has not recorded itself yet: the
    # launch record is what says the Deployment is being remediated.
    assert launched["dag_run_id"] in server.airflow.runs
    d = by_target(server.post(crash_loop_alert(pods[0])))[pods[0]]
    assert d["decision"] == "suppressed", d
    assert d["root_cause"] == {
        "kind": "owner_run",
        "owner": {"kind": "Deployment", "namespace": "demo", "name": "cart"},
        "dag_run_id": launched["dag_run_id"],
        "alertname": "KubeDeploymentRolloutStuck",
        "fingerprint": stuck["fingerprint"],
    }
    assert "root cause: KubeDeploymentRolloutStuck" in d["reason"] and "Deployment/demo/cart" in d["reason"]
    assert not [r for r in server.airflow.runs if pods[0] in json.dumps(server.airflow.runs[r]["conf"])]
    # A pod of another Deployment is not a symptom of it.
    other_pod = deployment_pods(sandbox, "till", replicas=1)[0]
    assert by_target(server.post(crash_loop_alert(other_pod)))[other_pod]["decision"] == "triggered"


def test_the_owner_alert_later_in_the_same_payload_suppresses_the_pod_alert(
    server: IntakeServer, sandbox: KubeSandbox
) -> None:
    [pod] = deployment_pods(sandbox, "basket", replicas=1)
    stuck = rollout_stuck_alert("basket")
    # The symptom first: when it is decided, nothing is launched for the Deployment yet.
    decided = by_target(server.post(crash_loop_alert(pod), stuck))
    assert decided["basket"]["decision"] == "triggered", decided["basket"]
    d = decided[pod]
    assert d["decision"] == "suppressed", d
    assert d["root_cause"] == {
        "kind": "owner_alert",
        "owner": {"kind": "Deployment", "namespace": "demo", "name": "basket"},
        "alertname": "KubeDeploymentRolloutStuck",
        "fingerprint": stuck["fingerprint"],
        "source": "payload",
    }
    runs = [body["dag_id"] for body in server.airflow.runs.values() if "basket" in json.dumps(body["conf"])]
    assert runs == ["kubernaut_deployment_rollout_stuck"]  # the Deployment's remedy, no pod restart


@pytest.fixture(scope="module")
def two_clusters(
    tmp_path_factory: pytest.TempPathFactory, alertmanager: Alertmanager
) -> Iterator[tuple[IntakeServer, KubeSandbox, KubeSandbox]]:
    """Clusters A and B (two sandboxes, both with nodes sandbox-node-1/-2), mapped by the
    ``cluster`` label, and an intake configured for both."""
    config = parse_config(
        {"clusters": {"cluster-a": "k8s_a", "cluster-b": "k8s_b"}, "blocking": {"backoff": {"base": 0}}},
        "test",
    )
    previous = os.environ.get("AIRFLOW_CONN_ALERTMANAGER_DEFAULT")
    os.environ["AIRFLOW_CONN_ALERTMANAGER_DEFAULT"] = json.dumps(
        {"conn_type": "http", "host": alertmanager.url}
    )
    workdir = tmp_path_factory.mktemp("clusters")
    try:
        with (
            kube_sandbox(workdir, conn_id="k8s_a") as a,
            kube_sandbox(workdir, conn_id="k8s_b") as b,
            history_database("kn_suppress_mc") as uri,
            intake_server(uri, REPO / "templates", config) as srv,
        ):
            yield srv, a, b
    finally:
        if previous is None:
            os.environ.pop("AIRFLOW_CONN_ALERTMANAGER_DEFAULT", None)
        else:
            os.environ["AIRFLOW_CONN_ALERTMANAGER_DEFAULT"] = previous


def test_a_node_alert_of_one_cluster_does_not_suppress_pods_of_another(
    two_clusters: tuple[IntakeServer, KubeSandbox, KubeSandbox],
) -> None:
    server, a, b = two_clusters
    node = "sandbox-node-1"
    deadline = time.monotonic() + 30
    while not (pods_on(a, node) and pods_on(b, node)):
        assert time.monotonic() < deadline, "demo pods not scheduled in both clusters"
        time.sleep(0.1)
    pod_a, pod_b = pods_on(a, node)[0][0], pods_on(b, node)[0][0]
    node_alert = webhook_alert("KubeNodeNotReady", {"node": node, "cluster": "cluster-a"})
    decided = {
        (d["cluster"], d["target"]["name"]): d
        for d in server.post(
            webhook_alert("KubePodNotReady", {"namespace": "demo", "pod": pod_b, "cluster": "cluster-b"}),
            webhook_alert("KubePodNotReady", {"namespace": "demo", "pod": pod_a, "cluster": "cluster-a"}),
            node_alert,
        )["decisions"]
    }
    # Cluster B's node of the same name has no alert: its pod's alert is no symptom.
    assert decided[("cluster-b", pod_b)]["decision"] == "triggered", decided[("cluster-b", pod_b)]
    in_a = decided[("cluster-a", pod_a)]
    assert in_a["decision"] == "suppressed", in_a
    assert in_a["root_cause"]["cluster"] == "cluster-a" and in_a["root_cause"]["node"] == node
    # Later, the node alert seen recently (history) counts in its own cluster only, too.
    later_b = webhook_alert("KubePodNotReady", {"namespace": "demo", "pod": pod_b, "cluster": "cluster-b"})
    later_a = webhook_alert("KubePodNotReady", {"namespace": "demo", "pod": pod_a, "cluster": "cluster-a"})
    again = {(d["cluster"], d["target"]["name"]): d for d in server.post(later_b, later_a)["decisions"]}
    assert again[("cluster-b", pod_b)]["decision"] != "suppressed", again[("cluster-b", pod_b)]
    assert again[("cluster-a", pod_a)]["root_cause"]["source"] == "history", again[("cluster-a", pod_a)]
