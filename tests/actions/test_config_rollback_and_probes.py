"""rollback_config_change and inspect_liveness_probe against the sandbox over HTTP, and the
sandbox faults they answer (kubernaut.sandbox.app_faults): a refused config value rolled out as
a new ConfigMap version, an application slower to start than its liveness probe allows."""

from __future__ import annotations

from typing import Any

import pytest

from kubernaut.actions import ActionContext, PreconditionFailed
from kubernaut.actions.kubernetes.config_rollback import config_changes
from kubernaut.policy import PolicyViolation
from kubernaut.sandbox import SandboxCluster
from kubernaut.sandbox.app_faults import BadConfig, SlowStart
from tests.actions.conftest import ConflictOnce, bump_annotation, policy_ctx
from tests.actions.k8s_helpers import must_get, pods_of, ready, retry_ctx, run, wait_all_ready

GOOD, BAD = "shop-config-5h2mt7bk8f", "shop-config-s6nns2pr66"


def configmap(name: str, level: str, namespace: str = "demo") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"LOG_LEVEL": level, "PAYMENT_URL": "http://payments:8080"},
    }


def shop(config: str, namespace: str = "demo", image: str = "ghcr.io/example/shop:2.1.0") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop", "namespace": namespace, "labels": {"app": "shop"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {
                "metadata": {"labels": {"app": "shop"}},
                "spec": {
                    "containers": [
                        {
                            "name": "shop",
                            "image": image,
                            "env": [
                                {
                                    "name": "LEVEL",
                                    "valueFrom": {"configMapKeyRef": {"name": config, "key": "LOG_LEVEL"}},
                                }
                            ],
                            "envFrom": [{"configMapRef": {"name": config}}],
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/shop"}],
                        }
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": config}}],
                },
            },
        },
    }


def crash_looping(pod: dict[str, Any]) -> bool:
    return any(
        ((s.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
        for s in (pod.get("status") or {}).get("containerStatuses") or []
    )


def template_configs(cluster: SandboxCluster, namespace: str = "demo") -> set[str]:
    spec = must_get(cluster, "deployments", namespace, "shop")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    return {
        container["env"][0]["valueFrom"]["configMapKeyRef"]["name"],
        container["envFrom"][0]["configMapRef"]["name"],
        spec["volumes"][0]["configMap"]["name"],
    }


def bad_rollout(cluster: SandboxCluster, image: str | None = None, namespace: str = "demo") -> None:
    """Revision 1 reads GOOD; revision 2 reads BAD (LOG_LEVEL=verbose, refused) and crash-loops."""
    cluster.apply(configmap(GOOD, "info", namespace))
    cluster.apply(shop(GOOD, namespace))
    cluster.wait_until(
        lambda: (
            len(pods_of(cluster, "shop", namespace)) == 2
            and all(map(ready, pods_of(cluster, "shop", namespace)))
        )
    )
    cluster.call(
        lambda: cluster.emulator.faults.bad_configs.append(BadConfig(namespace, "LOG_LEVEL", "verbose"))
    )
    cluster.apply(configmap(BAD, "verbose", namespace))
    cluster.apply(shop(BAD, namespace, image or "ghcr.io/example/shop:2.1.0"))
    cluster.wait_until(lambda: any(crash_looping(p) for p in pods_of(cluster, "shop", namespace)))


def test_rollback_config_change_points_back_at_the_previous_version(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    cluster.apply(configmap(GOOD, "info"))
    cluster.apply(shop(GOOD))
    wait_all_ready(cluster, "shop", 2)
    with pytest.raises(PreconditionFailed, match="no revision before 1"):
        run(ctx, "rollback_config_change", namespace="demo", deployment="shop")
    bad_rollout(cluster)
    # The refused value crash-loops the new pods (exit 1, the reason in their log); the old ones serve.
    crashing = [p for p in pods_of(cluster, "shop") if crash_looping(p)]
    assert crashing and all(p["spec"]["volumes"][0]["configMap"]["name"] == BAD for p in crashing)
    log = cluster.logs("demo", crashing[0]["metadata"]["name"], "shop")
    assert f"invalid configuration: LOG_LEVEL='verbose' (from ConfigMap/{BAD})" in log

    _, _, dry = run(dry_ctx, "rollback_config_change", namespace="demo", deployment="shop")
    assert not dry.changed and dry.output["dry_run"] is True and template_configs(cluster) == {BAD}

    before = must_get(cluster, "deployments", "demo", "shop")["spec"]["template"]
    conflict_once.arm(bump_annotation(cluster, "deployments", "demo", "shop"))
    action, params, result = run(ctx, "rollback_config_change", namespace="demo", deployment="shop")
    assert conflict_once.retried()  # the 409 was re-read and retried
    assert result.changed and result.output["revision"] == 2 and result.output["to_revision"] == 1
    assert {(c["kind"], c["name"], c["previous"]) for c in result.output["changes"]} == {
        ("ConfigMap", BAD, GOOD)
    }
    assert result.undo is not None and result.undo["template"] == before
    assert len(result.output["changes"]) == 3
    assert template_configs(cluster) == {GOOD}
    assert all(
        p["spec"]["volumes"][0]["configMap"]["name"] == GOOD for p in wait_all_ready(cluster, "shop", 2)
    )
    # Retried after an interruption: the template already differs from the record.
    _, _, again = run(
        retry_ctx(ctx, result.undo), "rollback_config_change", namespace="demo", deployment="shop"
    )
    assert again.output["already_done"] is True and template_configs(cluster) == {GOOD}
    assert action.undo(ctx, params, result.undo)["restored"] is True
    assert must_get(cluster, "deployments", "demo", "shop")["spec"]["template"] == before
    assert action.undo(ctx, params, result.undo)["restored"] is False
    assert must_get(cluster, "configmaps", "demo", BAD)["data"]["LOG_LEVEL"] == "verbose"  # never touched


def test_rollback_config_change_refuses_a_rollout_that_changed_more(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    bad_rollout(cluster, image="ghcr.io/example/shop:2.2.0")
    before = must_get(cluster, "deployments", "demo", "shop")["spec"]
    with pytest.raises(
        PreconditionFailed, match=r"more than ConfigMap/Secret references changed: /spec/containers/0/image"
    ):
        run(ctx, "rollback_config_change", namespace="demo", deployment="shop")
    assert must_get(cluster, "deployments", "demo", "shop")["spec"] == before


def test_rollback_config_change_refuses_when_the_previous_version_is_gone(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    bad_rollout(cluster)
    cluster.delete("configmaps", "demo", GOOD)
    with pytest.raises(PreconditionFailed, match=f"ConfigMap demo/{GOOD} no longer exists"):
        run(ctx, "rollback_config_change", namespace="demo", deployment="shop")
    assert template_configs(cluster) == {BAD}


@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_rollback_config_change_respects_protected_namespaces(cluster: SandboxCluster, dry_run: bool) -> None:
    bad_rollout(cluster, namespace="kube-system")
    with pytest.raises(PolicyViolation) as info:
        run(policy_ctx(dry_run), "rollback_config_change", namespace="kube-system", deployment="shop")
    assert info.value.rule == "protected_namespace"
    assert template_configs(cluster, "kube-system") == {BAD}


def test_config_changes_covers_secrets_and_projected_volumes() -> None:
    def template(secret: str, projected: str) -> dict[str, Any]:
        return {
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": secret, "key": "t"}}}],
                        "envFrom": [{"secretRef": {"name": secret}}],
                    }
                ],
                "volumes": [
                    {"name": "s", "secret": {"secretName": secret}},
                    {"name": "p", "projected": {"sources": [{"configMap": {"name": projected}}]}},
                ],
            }
        }

    changes = config_changes(template("creds-b", "extra-2"), template("creds-a", "extra-1"))
    assert [(c["path"], c["kind"], c["name"], c["previous"]) for c in changes] == [
        ("/spec/containers/0/env/0/valueFrom/secretKeyRef/name", "Secret", "creds-b", "creds-a"),
        ("/spec/containers/0/envFrom/0/secretRef/name", "Secret", "creds-b", "creds-a"),
        ("/spec/volumes/0/secret/secretName", "Secret", "creds-b", "creds-a"),
        ("/spec/volumes/1/projected/sources/0/configMap/name", "ConfigMap", "extra-2", "extra-1"),
    ]
    assert config_changes(template("a", "b"), template("a", "b")) == []
    moved = template("creds-a", "extra-1")
    moved["spec"]["containers"][0]["envFrom"] = []
    with pytest.raises(ValueError, match="not at the same places"):
        config_changes(moved, template("creds-a", "extra-1"))


def test_bad_config_restored_in_place_recovers_on_the_next_restart(cluster: SandboxCluster) -> None:
    """Environment and mounted config are read again at every container start: restoring the
    data lets the crash-looping containers run on their next restart, without a rollout."""
    bad_rollout(cluster)
    cluster.apply(configmap(BAD, "info"))
    cluster.wait_until(
        lambda: (
            len(pods_of(cluster, "shop")) == 2
            and all(
                ready(p) and p["spec"]["volumes"][0]["configMap"]["name"] == BAD
                for p in pods_of(cluster, "shop")
            )
        ),
        timeout=20,
    )


def checkout(initial_delay: int, startup_probe: dict[str, Any] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "checkout",
        "image": "ghcr.io/example/checkout:3.0.1",
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": 8080},
            "initialDelaySeconds": initial_delay,
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
    }
    if startup_probe:
        container["startupProbe"] = startup_probe
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "checkout", "namespace": "demo"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "checkout"}},
            "template": {"metadata": {"labels": {"app": "checkout"}}, "spec": {"containers": [container]}},
        },
    }


def test_inspect_liveness_probe_tells_liveness_kills_from_other_crashes(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    cluster.apply(checkout(initial_delay=5))
    wait_all_ready(cluster, "checkout", 2)
    cluster.call(
        lambda: cluster.emulator.faults.slow_starts.append(SlowStart("demo", "deployment", "checkout", 60))
    )
    cluster.wait_until(lambda: all(crash_looping(p) for p in pods_of(cluster, "checkout")))
    pod = pods_of(cluster, "checkout")[0]["metadata"]["name"]
    cluster.wait_until(
        lambda: must_get(cluster, "pods", "demo", pod)["status"]["containerStatuses"][0]["restartCount"] >= 2
    )
    _, _, result = run(ctx, "inspect_liveness_probe", namespace="demo", pod=pod, container="checkout")
    out = result.output
    assert out["killedByLiveness"] is True and out["killedContainers"] == ["checkout"]
    assert out["livenessKills"] >= 2 and out["livenessFailures"] >= 2 and out["restarts"] >= 2
    focus = out["container"]
    assert focus["livenessProbe"] == {
        "handler": "http-get http://:8080/healthz",
        "initialDelaySeconds": 5,
        "periodSeconds": 5,
        "timeoutSeconds": 1,
        "failureThreshold": 3,
        "budgetSeconds": 20,
    }
    assert focus["startBudgetSeconds"] == 20 and focus["startupProbe"] is None
    assert focus["lastTermination"]["exitCode"] == 137
    assert any("Liveness probe failed: Get" in e["message"] for e in out["events"])
    assert not result.changed

    # A container that exits on its own (no probe failure) is not reported as a liveness kill.
    cluster.inject_fault("crashloop", namespace="demo", deployment="api")
    cluster.wait_until(lambda: all(crash_looping(p) for p in pods_of(cluster, "api")))
    api_pod = pods_of(cluster, "api")[0]["metadata"]["name"]
    _, _, other = run(ctx, "inspect_liveness_probe", namespace="demo", pod=api_pod)
    assert other.output["killedByLiveness"] is False and other.output["livenessKills"] == 0
    assert other.output["container"]["lastTermination"]["exitCode"] == 1
    assert other.output["container"]["livenessProbe"] is None

    _, _, gone = run(ctx, "inspect_liveness_probe", namespace="demo", pod="nope")
    assert gone.output == {"exists": False, "namespace": "demo", "pod": "nope"}


@pytest.mark.parametrize(
    "fixed",
    [
        checkout(initial_delay=60),
        checkout(
            initial_delay=5,
            startup_probe={
                "httpGet": {"path": "/healthz", "port": 8080},
                "periodSeconds": 5,
                "failureThreshold": 15,
            },
        ),
    ],
    ids=["initial-delay", "startup-probe"],
)
def test_slow_start_runs_once_the_probe_allows_for_it(cluster: SandboxCluster, fixed: dict[str, Any]) -> None:
    """The application is healthy given more time: a probe whose budget covers its start-up
    (a longer initialDelaySeconds, or a startupProbe) lets the rolled-out pods run."""
    cluster.apply(checkout(initial_delay=5))
    wait_all_ready(cluster, "checkout", 2)
    cluster.call(
        lambda: cluster.emulator.faults.slow_starts.append(SlowStart("demo", "deployment", "checkout", 60))
    )
    cluster.wait_until(lambda: all(crash_looping(p) for p in pods_of(cluster, "checkout")))
    cluster.apply(fixed)
    cluster.wait_until(
        lambda: (
            len(pods_of(cluster, "checkout")) == 2
            and all(ready(p) and not crash_looping(p) for p in pods_of(cluster, "checkout"))
        ),
        timeout=20,
    )
