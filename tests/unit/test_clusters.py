"""Multi-cluster without a cluster: the configuration (fails closed), the intake's choice of
cluster (``no_cluster``), the run's re-check of that choice, and ``kubernaut route``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kubernaut.clusters import Cluster, ClusterError, ClusterMap, NoCluster, run_cluster
from kubernaut.config import ConfigError, KubernautConfig, parse_text
from kubernaut.intake.cli import route_main
from kubernaut.intake.decisions import Decider, Decision
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Router
from kubernaut.templates import load_templates
from tests.conftest import REPO
from tests.intake.conftest import alert, payload

CONFIG = "clusters: {eks-prod: k8s_eks_prod, gke-eu: k8s_gke_eu}\n"
MULTI = ClusterMap({"eks-prod": "k8s_eks_prod", "gke-eu": "k8s_gke_eu"})


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(load_templates(REPO / "templates").templates)


# -- configuration ------------------------------------------------------------------------------
def test_no_clusters_is_single_cluster_mode() -> None:
    config = KubernautConfig()
    assert config.clusters == {} and config.cluster_label == "cluster" and config.default_cluster is None
    assert not ClusterMap.from_config(config).multi


def test_clusters_are_read_from_the_configuration() -> None:
    config = parse_text(CONFIG + "cluster_label: k8s_cluster\ndefault_cluster: gke-eu\n", "kubernaut.yaml")
    clusters = ClusterMap.from_config(config)
    assert clusters.multi and clusters.label == "k8s_cluster" and clusters.default == "gke-eu"
    assert clusters.clusters == {"eks-prod": "k8s_eks_prod", "gke-eu": "k8s_gke_eu"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (CONFIG + "default_cluster: aks\n", "default_cluster: 'aks' is not one of the configured clusters"),
        ("default_cluster: aks\n", "default_cluster: 'aks' set but no clusters are configured"),
        (
            "clusters: {eks-prod: 'k8s prod'}\n",
            "clusters.eks-prod: 'k8s prod' is not an Airflow connection id",
        ),
        ("clusters: {'': k8s_x}\n", "a cluster name is a non-empty label value"),
        (CONFIG + "cluster_label: ''\n", "cluster_label: '': expected an alert label name"),
        ("clusters: [eks-prod]\n", "clusters: Input should be a valid dictionary"),
    ],
)
def test_bad_cluster_settings_fail_closed_naming_the_field(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_text(text, "/etc/kubernaut.yaml")
    assert str(err.value).startswith("/etc/kubernaut.yaml: invalid kubernaut configuration")
    assert problem in str(err.value)


# -- the intake's choice --------------------------------------------------------------------------
def test_the_label_picks_the_cluster_and_its_connection() -> None:
    assert MULTI.choose({"cluster": "gke-eu"}, "kubernetes_default") == Cluster("gke-eu", "k8s_gke_eu")


def test_an_unknown_cluster_is_refused_never_sent_elsewhere() -> None:
    refused = ClusterMap({**MULTI.clusters}, default="eks-prod").choose(
        {"cluster": "aks"}, "kubernetes_default"
    )
    assert isinstance(refused, NoCluster) and refused.name == "aks"
    assert "cluster 'aks' (label 'cluster') is not configured" in refused.reason


def test_without_the_label_only_a_configured_default_cluster_is_used() -> None:
    refused = MULTI.choose({"namespace": "demo"}, "kubernetes_default")
    assert isinstance(refused, NoCluster) and "no default_cluster is configured" in refused.reason
    assert isinstance(MULTI.choose({"cluster": ""}, "kubernetes_default"), NoCluster)  # empty = absent
    with_default = ClusterMap(MULTI.clusters, default="gke-eu")
    assert with_default.choose({}, "kubernetes_default") == Cluster("gke-eu", "k8s_gke_eu")


def test_single_cluster_mode_ignores_the_label_and_keeps_the_template_connection() -> None:
    single = ClusterMap({})
    assert single.choose({"cluster": "whatever"}, "k8s_from_template") == Cluster("", "k8s_from_template")


def test_decider_decides_no_cluster_and_names_the_cluster(router: Router) -> None:
    decider = Decider(router, KubernautConfig().policy, clusters=MULTI)
    raw = alert(namespace="demo", pod="web-1", cluster="aks")
    d = decider.decide(Alert.model_validate(raw))
    assert d.decision is Decision.NO_CLUSTER and d.cluster == "aks" and d.kube_conn_id == ""
    assert "cluster 'aks' (label 'cluster') is not configured" in d.reason
    ok = decider.decide(Alert.model_validate(alert(namespace="demo", pod="web-1", cluster="gke-eu")))
    assert ok.decision is Decision.TRIGGERED
    assert (ok.cluster, ok.kube_conn_id) == ("gke-eu", "k8s_gke_eu")
    assert ok.to_dict()["cluster"] == "gke-eu" and ok.to_dict()["kube_conn_id"] == "k8s_gke_eu"


def test_the_route_preview_shows_the_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "kubernaut.yaml"
    config.write_text(CONFIG)
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(config))
    file = tmp_path / "payload.json"
    eks = alert(fingerprint="aa01", namespace="demo", pod="web-1", cluster="eks-prod")
    unknown = alert(fingerprint="aa02", namespace="demo", pod="web-1", cluster="aks")
    file.write_text(json.dumps(payload(eks, unknown)))
    args = ["--alerts", str(file), "--templates", str(REPO / "templates"), "--history", "off"]
    assert route_main(args) == 0
    first, second = json.loads(capsys.readouterr().out)
    assert (first["decision"], first["cluster"], first["kube_conn_id"]) == (
        "triggered",
        "eks-prod",
        "k8s_eks_prod",
    )
    assert (second["decision"], second["cluster"], second["kube_conn_id"]) == ("no_cluster", "aks", "")


# -- the run's re-check -----------------------------------------------------------------------------
def conf(carried: Any = None, **labels: str) -> dict[str, Any]:
    out: dict[str, Any] = {"alert": {"labels": {"alertname": "X", **labels}}}
    if carried is not None:
        out["cluster"] = carried
    return out


def test_the_run_uses_the_cluster_its_conf_carries() -> None:
    chosen = run_cluster(conf({"name": "gke-eu", "conn_id": "k8s_gke_eu"}), MULTI, "kubernetes_default")
    assert chosen == Cluster("gke-eu", "k8s_gke_eu")


def test_a_manual_run_without_the_choice_resolves_it_from_the_alert_labels() -> None:
    assert run_cluster(conf(cluster="eks-prod"), MULTI, "x") == Cluster("eks-prod", "k8s_eks_prod")
    with pytest.raises(ClusterError, match="no cluster for this run: the alert has no 'cluster' label"):
        run_cluster(conf(), MULTI, "kubernetes_default")


@pytest.mark.parametrize(
    ("carried", "problem"),
    [
        ({"name": "gke-eu", "conn_id": "k8s_eks_prod"}, "configured with connection 'k8s_gke_eu'"),
        ({"name": "aks", "conn_id": "k8s_aks"}, "names cluster 'aks', which is not configured"),
        ({"name": "gke-eu"}, "expected {'name': <cluster>, 'conn_id': <connection>}"),
        ("gke-eu", "expected {'name': <cluster>, 'conn_id': <connection>}"),
    ],
)
def test_a_conf_that_disagrees_with_the_configuration_fails_closed(carried: Any, problem: str) -> None:
    with pytest.raises(ClusterError, match=problem.replace("{", r"\{").replace("}", r"\}")):
        run_cluster(conf(carried), MULTI, "kubernetes_default")


def test_single_cluster_mode_refuses_a_conf_that_names_a_cluster() -> None:
    assert run_cluster(conf(cluster="gke-eu"), ClusterMap({}), "k8s_t") == Cluster("", "k8s_t")
    with pytest.raises(ClusterError, match="no clusters are configured"):
        run_cluster(conf({"name": "gke-eu", "conn_id": "k8s_gke_eu"}), ClusterMap({}), "k8s_t")


def test_a_task_of_a_run_for_an_unknown_cluster_fails_before_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from kubernaut.operators.run_context import RunContext

    config = tmp_path / "kubernaut.yaml"
    config.write_text(CONFIG)
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(config))
    dag_run = SimpleNamespace(
        dag_id="d", run_id="r", conf=conf({"name": "aks", "conn_id": "kubernetes_default"})
    )
    with pytest.raises(AirflowFailException, match=r"kubernaut cluster: conf\.cluster names cluster 'aks'"):
        RunContext.open({"dag_run": dag_run, "dag": None}, "t", dry_run=False)
