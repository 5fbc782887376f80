"""A cluster-wide alert end to end: KubeCPUOvercommit keeps no object label (``sum by
(cluster)``), the installation's configuration names the node group. The intake decides with
the real history (PostgreSQL) and the configuration in force, and hands the conf it would POST
to the run; the run (dag.test: operator -> runner -> journal, its wait in the trigger) takes
``machine_deployment`` from the configuration, grows that MachineDeployment in the sandbox
(Cluster API controllers) and records it as the run's target, so busy, cooldown and the failure
blocks count it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kubernaut.clusters import ClusterMap
from kubernaut.config import load_config
from kubernaut.history import History
from kubernaut.intake.decisions import Decider, Decision, HistoryPort
from kubernaut.intake.history_checks import IntakeHistory
from kubernaut.intake.launcher import Launcher
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Router
from kubernaut.sandbox import SandboxCluster
from kubernaut.template_params import TemplateParameters
from kubernaut.templates import load_templates
from tests.conftest import REPO, connected_sandbox
from tests.dagruns.test_templates_run import run_dag
from tests.intake.conftest import FakeAirflow, alert

T = TypeVar("T")
CONFIG = "template_parameters: {cluster-capacity: {namespace: capi, machine_deployment: workers}}\n"


def node_group(replicas: int) -> dict[str, Any]:
    labels = {"pool": "workers"}
    return {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "MachineDeployment",
        "metadata": {
            "name": "workers",
            "namespace": "capi",
            "annotations": {"cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size": "5"},
        },
        "spec": {
            "clusterName": "prod",
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "clusterName": "prod",
                    "version": "v1.33.0",
                    "bootstrap": {"configRef": {"kind": "KubeadmConfigTemplate", "name": "workers"}},
                    "infrastructureRef": {"kind": "DockerMachineTemplate", "name": "workers"},
                },
            },
        },
    }


def ready_machines(cluster: SandboxCluster) -> int:
    md = cluster.get("machinedeployments", "capi", "workers")
    assert md is not None
    return int((md.get("status") or {}).get("readyReplicas") or 0)


@pytest.fixture
def capi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxCluster]:
    config = tmp_path / "kubernaut.yaml"
    config.write_text(CONFIG)
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(config))
    with connected_sandbox(tmp_path, monkeypatch, pod_ready_delay=0.1, crds=("cluster.x-k8s.io",)) as sandbox:
        sandbox.apply(node_group(2))
        sandbox.wait_until(lambda: ready_machines(sandbox) == 2, timeout=20)
        yield sandbox


def test_overcommit_grows_the_configured_node_group_and_the_run_records_it(
    dagbag: Any, capi: SandboxCluster
) -> None:
    history = IntakeHistory()

    async def run(work: Callable[[HistoryPort], T]) -> T:
        return work(history)

    config = load_config()
    decider = Decider(Router(load_templates(REPO / "templates").templates), config.policy)
    decider.clusters = ClusterMap.from_config(config)
    decider.parameters = TemplateParameters.from_config(config)
    airflow = FakeAirflow()
    # kubernetes-mixin KubeCPUOvercommit: only alertname and severity survive the aggregation.
    raw = alert("KubeCPUOvercommit", fingerprint="3c5e7a9b1d2f4611", severity="warning")
    d = asyncio.run(Launcher(decider, run, airflow).decide(Alert.model_validate(raw)))
    assert d.decision is Decision.TRIGGERED, d.reason
    assert d.target.as_dict() == {"kind": "MachineDeployment", "namespace": "capi", "name": "workers"}
    [conf] = airflow.runs.values()
    assert "params" not in conf  # the run reads the node group from the configuration itself

    state, run_id, states = run_dag(dagbag, "kubernaut_cluster_capacity", conf)
    assert state == "success", states
    md = capi.get("machinedeployments", "capi", "workers")
    assert md is not None and md["spec"]["replicas"] == 3
    rows = History()._query(
        "SELECT template, target_kind, target_namespace, target_name FROM kubernaut_runs "
        "WHERE dag_run_id = %s",
        (run_id,),
    )
    assert rows == [
        {
            "template": "cluster-capacity",
            "target_kind": "MachineDeployment",
            "target_namespace": "capi",
            "target_name": "workers",
        }
    ]
