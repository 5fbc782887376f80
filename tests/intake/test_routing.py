from __future__ import annotations

import pytest

from kubernaut.alert import Target, derive_target
from kubernaut.intake.routing import Router
from kubernaut.templates import Template


@pytest.mark.parametrize(
    ("labels", "target"),
    [
        (
            {"alertname": "KubePodCrashLooping", "namespace": "demo", "pod": "web-1", "container": "web"},
            Target("Pod", "demo", "web-1"),
        ),
        # kube-prometheus-stack keeps the kube-state-metrics pod as `pod`: the deployment must win.
        (
            {
                "alertname": "KubeDeploymentReplicasMismatch",
                "namespace": "demo",
                "deployment": "web",
                "pod": "kube-state-metrics-5d8",
                "container": "kube-state-metrics",
            },
            Target("Deployment", "demo", "web"),
        ),
        (
            {"alertname": "KubeNodeNotReady", "node": "worker-2", "namespace": "monitoring"},
            Target("Node", "", "worker-2"),
        ),
        (
            {
                "alertname": "KubePersistentVolumeFillingUp",
                "namespace": "db",
                "persistentvolumeclaim": "data-0",
                "node": "worker-1",
            },
            Target("PersistentVolumeClaim", "db", "data-0"),
        ),
        (
            {"alertname": "SomethingCustom", "namespace": "a", "statefulset": "s"},
            Target("StatefulSet", "a", "s"),
        ),
        (
            {"alertname": "KubeJobFailed", "namespace": "a", "job_name": "backup"},
            Target("Job", "a", "backup"),
        ),
        ({"alertname": "Watchdog"}, Target("", "", "")),
    ],
)
def test_target_from_kube_prometheus_labels(labels: dict[str, str], target: Target) -> None:
    assert derive_target(labels) == target


def test_alert_name_and_template_matchers_select(router: Router) -> None:
    route = router.route(
        {"alertname": "KubeDeploymentReplicasMismatch", "namespace": "demo", "deployment": "w"}
    )
    assert route is not None and route.template.name == "deployment-replica-mismatch"
    assert router.route({"alertname": "KubeDeploymentReplicasMismatch", "namespace": "kube-system"}) is None
    assert router.route({"alertname": "Unknown"}) is None


def test_most_specific_template_wins_and_the_reason_says_so(router: Router) -> None:
    route = router.route({"alertname": "KubePodNotReady", "namespace": "demo", "pod": "p"})
    assert route is not None and route.template.name == "pod-crash-recovery"
    assert "most specific" in route.reason and "pod-diagnostics" in route.reason


def test_ties_are_broken_by_name_whatever_the_order(templates: list[Template]) -> None:
    base = next(t for t in templates if t.name == "pod-diagnostics")
    twin = base.model_copy(update={"name": "a-pod-diagnostics"})
    for order in ([base, twin], [twin, base]):
        route = Router(order).route({"alertname": "KubeContainerWaiting", "pod": "p", "namespace": "x"})
        assert route is not None and route.template.name == "a-pod-diagnostics"


def test_alert_type_label_matchers_count_towards_specificity(templates: list[Template]) -> None:
    base = next(t for t in templates if t.name == "pod-diagnostics")
    narrow = Template.model_validate(
        {
            **base.model_dump(mode="json", exclude={"name", "alert_types"}),
            "name": "z-critical-only",
            "alert_types": [{"alertname": "KubeContainerWaiting", "matchers": ['severity="critical"']}],
        }
    )
    router = Router([base, narrow])
    critical = router.route({"alertname": "KubeContainerWaiting", "severity": "critical", "pod": "p"})
    warning = router.route({"alertname": "KubeContainerWaiting", "severity": "warning", "pod": "p"})
    assert critical is not None and critical.template.name == "z-critical-only"
    assert warning is not None and warning.template.name == "pod-diagnostics"
