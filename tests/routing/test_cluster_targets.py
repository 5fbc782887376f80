"""Alerts whose labels name no object (cluster-wide aggregations, the control plane) decided with
the shipped templates and real corpus payloads: the template's declared ``target:`` names the
object (the configured node group, the cluster), per cluster in multi-cluster mode; without
the configuration the decision says which setting is missing; the launched conf carries the
target so the run records it."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import yaml

from kubernaut.alert import Target
from kubernaut.clusters import ClusterMap
from kubernaut.config import ConfigError, KubernautConfig, parse_text
from kubernaut.intake.cli import route_main
from kubernaut.intake.decisions import Decider, Decision, HistoryPort
from kubernaut.intake.launcher import Launcher
from kubernaut.intake.payload import Alert, parse_payload
from kubernaut.intake.routing import Router
from kubernaut.operators.run_context import declared_target
from kubernaut.template_params import TemplateParameters
from kubernaut.templates import load_templates
from tests.conftest import REPO
from tests.intake.conftest import FakeAirflow, FakeHistory

CORPUS = REPO / "tests" / "routing_corpus"
T = TypeVar("T")


@pytest.fixture(scope="module")
def router() -> Router:
    report = load_templates(REPO / "templates")
    assert not report.all_errors()
    return Router(report.templates)


def corpus_payload(file: str, payload_id: str) -> dict[str, Any]:
    doc = yaml.safe_load((CORPUS / file).read_text())
    return dict(next(e for e in doc["payloads"] if e["id"] == payload_id)["payload"])


def corpus_alert(file: str, payload_id: str) -> Alert:
    return parse_payload(corpus_payload(file, payload_id)).alerts[0]


def decider(router: Router, config: KubernautConfig) -> Decider:
    d = Decider(router, config.policy, clusters=ClusterMap.from_config(config))
    d.parameters = TemplateParameters.from_config(config)
    return d


def test_unconfigured_node_group_is_no_target_naming_the_setting(router: Router) -> None:
    d = decider(router, KubernautConfig()).decide(
        corpus_alert("kubernetes-resources.yaml", "KubeCPUOvercommit")
    )
    assert d.decision is Decision.NO_TARGET
    assert d.template == "cluster-capacity"
    assert "'machine_deployment'" in d.reason
    assert "set template_parameters.cluster-capacity: {machine_deployment: ...}" in d.reason


def test_configured_node_group_is_the_target_and_per_cluster(router: Router) -> None:
    config = parse_text(
        "clusters: {eu-prod-1: k8s_eu, us-prod-1: k8s_us}\n"
        "template_parameters: {cluster-capacity: {namespace: capi, machine_deployment: workers}}\n"
        "cluster_parameters: {eu-prod-1: {cluster-capacity: {machine_deployment: eu-workers}}}\n",
        "test",
    )
    alert = corpus_alert("kubernetes-resources.yaml", "cpu-overcommit-multicluster")
    assert alert.labels["cluster"] == "eu-prod-1"
    d = decider(router, config).decide(alert)
    assert d.decision is Decision.TRIGGERED, d.reason
    assert (d.template, d.cluster, d.kube_conn_id) == ("cluster-capacity", "eu-prod-1", "k8s_eu")
    assert d.target == Target("MachineDeployment", "capi", "eu-workers")
    other = alert.model_copy(update={"labels": {**alert.labels, "cluster": "us-prod-1"}})
    assert decider(router, config).decide(other).target == Target("MachineDeployment", "capi", "workers")


def test_cluster_parameters_must_name_a_configured_cluster() -> None:
    with pytest.raises(ConfigError, match=r"cluster_parameters: 'eu-prod-1' is not one of the configured"):
        parse_text("cluster_parameters: {eu-prod-1: {cluster-capacity: {machine_deployment: w}}}\n", "cfg")


def test_run_parameters_are_defaults_then_configuration_then_conf() -> None:
    params = TemplateParameters(
        {"cluster-capacity": {"namespace": "capi", "machine_deployment": "workers"}},
        {"eu": {"cluster-capacity": {"machine_deployment": "eu-workers"}}},
    )
    assert params.for_run("cluster-capacity", "", None) == {
        "namespace": "capi",
        "machine_deployment": "workers",
    }
    assert params.for_run("cluster-capacity", "eu", {"add": 2}) == {
        "namespace": "capi",
        "machine_deployment": "eu-workers",
        "add": 2,
    }
    assert params.for_run("cluster-capacity", "eu", {"machine_deployment": "x"})["machine_deployment"] == "x"
    assert params.for_run("pod-crash-recovery", "eu", None) == {}
    with pytest.raises(ValueError, match=r"conf\.params: expected a mapping"):
        params.for_run("cluster-capacity", "", ["workers"])


def test_kubernaut_route_names_the_cluster_and_the_node_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operators' preview, with the corpus's configuration: a control-plane alert is a page
    about the cluster, a capacity alert grows the configured MachineDeployment."""
    alerts = [
        corpus_payload("kubernetes-system.yaml", "apiserver-down")["alerts"][0],
        corpus_payload("kubernetes-resources.yaml", "KubeMemoryOvercommit")["alerts"][0],
    ]
    path = tmp_path / "payload.json"
    path.write_text(json.dumps({"version": "4", "status": "firing", "receiver": "k", "alerts": alerts}))
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(CORPUS / "config" / "kubernaut.yaml"))
    out = io.StringIO()
    with redirect_stdout(out):
        code = route_main(["--alerts", str(path), "--templates", str(REPO / "templates"), "--history", "off"])
    assert code == 0
    api, memory = json.loads(out.getvalue())
    assert (api["decision"], api["template"]) == ("triggered", "control-plane-notify")
    assert api["target"] == {"kind": "Cluster", "namespace": "", "name": "local"}
    assert (memory["decision"], memory["template"]) == ("triggered", "cluster-capacity")
    assert memory["target"] == {"kind": "MachineDeployment", "namespace": "capi", "name": "workers"}


def test_the_launched_conf_carries_the_declared_target_and_the_run_records_it(router: Router) -> None:
    history, airflow = FakeHistory(), FakeAirflow()

    async def run(work: Callable[[HistoryPort], T]) -> T:
        return work(cast(HistoryPort, history))  # the fake keeps to the single-cluster calls

    config = parse_text((CORPUS / "config" / "kubernaut.yaml").read_text(), "corpus")
    alert = corpus_alert("kubernetes-resources.yaml", "KubeCPUOvercommit")
    d = asyncio.run(Launcher(decider(router, config), run, airflow).decide(alert))
    assert d.decision is Decision.TRIGGERED, d.reason
    [conf] = airflow.runs.values()
    assert conf["target"] == {"kind": "MachineDeployment", "namespace": "capi", "name": "workers"}
    assert declared_target(conf) == {"kind": "MachineDeployment", "namespace": "capi", "resource": "workers"}
    # An alert whose labels name its object records that object, whatever a conf claims.
    labelled = {
        "alert": {"labels": {"alertname": "KubePodCrashLooping", "namespace": "demo", "pod": "web-1"}}
    }
    assert declared_target({**labelled, "target": conf["target"]}) == {}
