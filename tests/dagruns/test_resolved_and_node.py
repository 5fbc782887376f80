"""Run-time block checks through the production path (dag.test: operator -> runner -> journal
in PostgreSQL), against the sandbox cluster over HTTP and a real Alertmanager:

- already resolved: before its first change a run asks Alertmanager whether its alert still
  fires; resolved -> the run ends ``not_needed`` (green) and changes nothing; firing -> it acts;
- a pod on a NotReady node is not restarted: the step fails its pre-check with the root cause
  and the run is not green.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kubernaut.history import History
from kubernaut.live_stack import Alertmanager, am_alert
from kubernaut.local_stack import free_port
from kubernaut.sandbox import SandboxCluster
from tests.dagruns.test_templates_run import POD_CRASH_PARAMS, crashloop, pods, run_dag

DAG = "kubernaut_pod_crash_recovery"


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    am = Alertmanager(tmp_path_factory.mktemp("am"), f"http://127.0.0.1:{free_port()}/nowhere").start()
    try:
        yield am
    finally:
        am.stop()


@pytest.fixture
def am_connection(alertmanager: Alertmanager, monkeypatch: pytest.MonkeyPatch) -> Alertmanager:
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALERTMANAGER_DEFAULT", json.dumps({"conn_type": "http", "host": alertmanager.url})
    )
    return alertmanager


def victim_alert(cluster: SandboxCluster) -> tuple[str, dict[str, Any]]:
    """A crash-looping web pod and the alert conf the intake would launch its run with."""
    victim = crashloop(cluster, "web")[0]["metadata"]["name"]
    newest = max(p["metadata"]["creationTimestamp"] for p in pods(cluster, "web"))
    cluster.wait_until(lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) > newest)
    labels = {"alertname": "KubePodCrashLooping", "namespace": "demo", "pod": victim, "container": "web"}
    conf = {
        "alert": {
            "status": "firing",
            "labels": labels,
            "annotations": {},
            "startsAt": datetime.now(UTC).isoformat(),
            "fingerprint": secrets.token_hex(8),
        },
        "params": POD_CRASH_PARAMS,
    }
    return victim, conf


def test_a_resolved_alert_ends_the_run_not_needed_without_changing_anything(
    dagbag: Any, cluster: SandboxCluster, am_connection: Alertmanager
) -> None:
    victim, conf = victim_alert(cluster)
    uid = (cluster.get("pods", "demo", victim) or {})["metadata"]["uid"]
    assert am_connection.alerts() == []  # the alert is no longer firing
    state, run_id, states = run_dag(dagbag, DAG, conf)
    assert state == "success", states  # green
    assert states["assess-pod-state"] == "success"
    assert states["restart-pod"] == states["validate-recovery"] == "skipped", states
    assert (cluster.get("pods", "demo", victim) or {}).get("metadata", {}).get("uid") == uid  # untouched
    run = History().run(run_id)
    assert run is not None and run["status"] == "not_needed", run
    assert "KubePodCrashLooping" in run["detail"] and "no longer fires" in run["detail"]
    assert run["undo"] == []  # nothing journaled: nothing changed
    kinds = {(o["kind"], o["outcome"]) for o in run["outcomes"]}
    assert {("resolved_check", "not_needed"), ("run", "not_needed")} <= kinds


def test_a_firing_alert_is_remediated(
    dagbag: Any, cluster: SandboxCluster, am_connection: Alertmanager
) -> None:
    victim, conf = victim_alert(cluster)
    starts = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    am_connection.post_alerts([am_alert(conf["alert"]["labels"], starts)])
    deadline = time.monotonic() + 30
    while not am_connection.alerts():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    try:
        state, run_id, states = run_dag(dagbag, DAG, conf)
        assert state == "success" and states["restart-pod"] == "success", states
        assert cluster.get("pods", "demo", victim) is None  # restarted
        run = History().run(run_id)
        assert run is not None and run["status"] == "success"
    finally:
        ended = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        am_connection.post_alerts([{**am_alert(conf["alert"]["labels"], starts), "endsAt": ended}])


def test_a_pod_on_a_not_ready_node_is_not_restarted(
    dagbag: Any, cluster: SandboxCluster, tmp_path: Path
) -> None:
    from kubernetes import client, config

    victim, conf = victim_alert(cluster)
    node = (cluster.get("pods", "demo", victim) or {})["spec"]["nodeName"]
    core = client.CoreV1Api(config.new_client_from_config(str(tmp_path / "kubeconfig")))
    unknown = {
        "type": "Ready",
        "status": "Unknown",
        "reason": "NodeStatusUnknown",
        "message": "Kubelet stopped",
    }
    core.patch_node_status(node, {"status": {"conditions": [unknown]}})  # as the node controller does
    state, run_id, states = run_dag(dagbag, DAG, {**conf, "resolved_check": False})
    assert state == "failed" and states["restart-pod"] == "failed", states  # not green
    assert cluster.get("pods", "demo", victim) is not None  # not restarted
    run = History().run(run_id)
    assert run is not None and run["status"] == "rolled_back"
    (step,) = [s for s in run["steps"] if s["step"] == "restart-pod"]
    assert f"root cause: node {node} NotReady" in step["error"], step
