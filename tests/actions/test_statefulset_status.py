"""get_statefulset_status against the sandbox's StatefulSet controller over HTTP: a set that has
rolled out is not updating; once an image no registry serves is rolled out, the set is
updating, the replaced pod (highest ordinal) runs the update revision and waits on its image,
the others still run the previous revision. image-pull-rollback rolls a StatefulSet back only
in the first of these cases for the alerting pod."""

from __future__ import annotations

from typing import Any

from kubernaut.actions import ActionContext
from kubernaut.sandbox import SandboxCluster
from tests.actions.k8s_helpers import run


def statefulset() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "demo", "labels": {"app": "db"}},
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "postgres", "image": "postgres:16.3"}]},
            },
        },
    }


def waiting(cluster: SandboxCluster, pod: str) -> list[str]:
    found = cluster.get("pods", "demo", pod) or {}
    statuses = (found.get("status") or {}).get("containerStatuses") or []
    return [((s.get("state") or {}).get("waiting") or {}).get("reason", "") for s in statuses]


def test_an_update_in_progress_and_the_pods_revision(cluster: SandboxCluster, ctx: ActionContext) -> None:
    cluster.apply(statefulset())
    cluster.wait_until(
        lambda: (
            ((cluster.get("statefulsets", "demo", "db") or {}).get("status") or {}).get("readyReplicas") == 3
        ),
        timeout=30,
    )
    _, _, settled = run(ctx, "get_statefulset_status", namespace="demo", statefulset="db", pod="db-2")
    assert settled.output["updating"] is False
    assert settled.output["podUpdated"] is True  # no update: every pod runs the (only) revision
    assert settled.changed is False

    cluster.inject_fault("image-pull", namespace="demo", statefulset="db")
    cluster.wait_until(
        lambda: "ImagePullBackOff" in waiting(cluster, "db-2") or "ErrImagePull" in waiting(cluster, "db-2"),
        timeout=30,
    )
    _, _, stuck = run(ctx, "get_statefulset_status", namespace="demo", statefulset="db", pod="db-2")
    out = stuck.output
    assert out["updating"] is True and out["currentRevision"] != out["updateRevision"]
    assert out["podUpdated"] is True and out["podRevision"] == out["updateRevision"]
    assert out["images"] == {"postgres": "postgres:does-not-exist"}
    _, _, old = run(ctx, "get_statefulset_status", namespace="demo", statefulset="db", pod="db-0")
    assert old.output["podUpdated"] is False and old.output["podRevision"] == out["currentRevision"]
    _, _, gone = run(ctx, "get_statefulset_status", namespace="demo", statefulset="db", pod="db-7")
    assert gone.output["podExists"] is False and gone.output["podUpdated"] is False
