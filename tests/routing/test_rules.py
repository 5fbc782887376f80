"""Routing rules that real label sets need: informational alerts left alone unless a template
opts in, and node-exporter alerts aimed at the node rather than the exporter's pod."""

from __future__ import annotations

from typing import Any

import pytest

from kubernaut.alert import Target, alert_context, derive_target
from kubernaut.config import PolicyConfig
from kubernaut.intake.decisions import Decider, Decision
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Router
from kubernaut.templates import Template

STEP = {"name": "look", "action": {"type": "custom", "action": "log", "parameters": {"message": "hi"}}}


def template(name: str, alert_types: list[Any], matchers: list[str] | None = None) -> Template:
    return Template.model_validate(
        {"name": name, "alert_types": alert_types, "matchers": matchers or [], "steps": [STEP]}
    )


def alert(**labels: str) -> Alert:
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": labels,
            "startsAt": "2026-11-30T09:14:27Z",
            "fingerprint": "0a1b2c3d4e5f6a7b",
        }
    )


@pytest.mark.parametrize("severity", ["info", "none", "INFO"])
def test_informational_alert_is_left_alone_by_a_template_that_does_not_name_severity(severity: str) -> None:
    decider = Decider(Router([template("any-throttling", ["CPUThrottlingHigh"])]), PolicyConfig())
    d, route = decider.classify(
        alert(alertname="CPUThrottlingHigh", severity=severity, namespace="shop", pod="web-1")
    )
    assert route is None
    assert d.decision is Decision.NO_TEMPLATE
    assert "informational alert" in d.reason and "any-throttling" in d.reason


def test_warning_still_routes_and_a_template_may_opt_in_to_info() -> None:
    plain = template("any-throttling", ["CPUThrottlingHigh"])
    opted = template("info-throttling", [{"alertname": "CPUThrottlingHigh", "matchers": ['severity="info"']}])
    router = Router([plain, opted])
    route = router.route({"alertname": "CPUThrottlingHigh", "severity": "warning", "pod": "p"})
    assert route is not None and route.template.name == "any-throttling"
    route = router.route({"alertname": "CPUThrottlingHigh", "severity": "info", "pod": "p"})
    assert route is not None and route.template.name == "info-throttling"
    wide = template("wide", ["CPUThrottlingHigh"], matchers=['severity=~"info|warning"'])
    route = Router([wide]).route({"alertname": "CPUThrottlingHigh", "severity": "info", "pod": "p"})
    assert route is not None and route.template.name == "wide"


NODE_EXPORTER = {
    "alertname": "NodeFilesystemSpaceFillingUp",
    "container": "kube-rbac-proxy",
    "endpoint": "https",
    "job": "node-exporter",
    "namespace": "monitoring",
    "pod": "node-exporter-8xk2p",
    "service": "node-exporter",
    "mountpoint": "/",
    "severity": "warning",
}


@pytest.mark.parametrize(
    ("instance", "node"),
    [
        ("worker-1", "worker-1"),
        ("worker-1:9100", "worker-1"),
        ("10.0.1.12:9100", "10.0.1.12"),
        ("[fd00::7]:9100", "fd00::7"),
    ],
)
def test_node_exporter_alert_targets_the_node_not_the_exporter_pod(instance: str, node: str) -> None:
    labels = {**NODE_EXPORTER, "instance": instance}
    assert derive_target(labels) == Target("Node", "", node)
    context = alert_context({"alert": {"labels": labels}})
    assert (context["kind"], context["resource"], context["namespace"]) == ("Node", node, "monitoring")


def test_a_node_label_wins_and_other_jobs_keep_their_pod() -> None:
    assert derive_target({**NODE_EXPORTER, "instance": "10.0.1.12:9100", "node": "worker-2"}) == Target(
        "Node", "", "worker-2"
    )
    prom = {
        "alertname": "PrometheusRuleFailures",
        "job": "prometheus-k8s",
        "namespace": "monitoring",
        "pod": "prometheus-k8s-0",
        "instance": "10.244.1.21:9090",
    }
    assert derive_target(prom) == Target("Pod", "monitoring", "prometheus-k8s-0")


def test_node_exporter_alert_is_not_protected_by_the_exporters_namespace() -> None:
    policy = PolicyConfig(protected_namespaces=["monitoring"])
    decider = Decider(Router([template("node-notify", ["NodeFilesystemSpaceFillingUp"])]), policy)
    d, _ = decider.classify(alert(**NODE_EXPORTER, instance="worker-1"))
    assert d.decision is Decision.TRIGGERED, d.reason
    assert d.target == Target("Node", "", "worker-1")


def test_quota_alert_targets_its_resource_quota() -> None:
    # kubernetes-mixin's KubeQuota* keep namespace, resource and resourcequota (max without
    # instance, job, type): the target is the quota, not the `resource` name ("requests.cpu")
    labels = {
        "alertname": "KubeQuotaExceeded",
        "namespace": "shop",
        "resource": "requests.cpu",
        "resourcequota": "compute",
        "severity": "warning",
    }
    assert derive_target(labels) == Target("ResourceQuota", "shop", "compute")


def test_node_pressure_targets_the_node_not_kube_state_metrics() -> None:
    labels = {
        "alertname": "KubeNodePressure",
        "node": "worker-3",
        "condition": "DiskPressure",
        "namespace": "monitoring",
        "pod": "kube-state-metrics-0",
        "severity": "info",
    }
    assert derive_target(labels) == Target("Node", "", "worker-3")


def test_cert_manager_alert_targets_the_certificate() -> None:
    labels = {
        "alertname": "CertManagerCertExpirySoon",
        "name": "shop-tls",
        "exported_namespace": "shop",
        "namespace": "cert-manager",
        "pod": "cert-manager-7d9f",
        "severity": "warning",
    }
    assert derive_target(labels) == Target("Certificate", "shop", "shop-tls")
