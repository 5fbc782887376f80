"""cleanup_node_disk against the sandbox over HTTP: a node under DiskPressure gets a bounded Job
pinned to it (nodeName, hostPath of an allow-listed directory, a fixed `find -delete` argv,
backoffLimit 0, activeDeadlineSeconds, ttlSecondsAfterFinished); the step waits until the Job
completed and the kubelet reports the pressure gone; dry run; no undo (journaled as such);
a directory outside policy.node_cleanup_paths or with `..` is refused before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from kubernaut.actions import ActionContext, PreconditionFailed
from kubernaut.sandbox import SandboxCluster
from kubernaut.sandbox.nodedisk import DISK_PRESSURE_TAINT
from kubernaut.sandbox.store import now_rfc3339
from tests.actions.conftest import policy_ctx
from tests.actions.k8s_helpers import must_get, run


def under_pressure(cluster: SandboxCluster, name: str) -> None:
    node = must_get(cluster, "nodes", None, name)
    node["spec"]["taints"] = [{"key": DISK_PRESSURE_TAINT, "effect": "NoSchedule"}]
    node["status"]["conditions"] = [
        c
        if c["type"] != "DiskPressure"
        else {
            "type": "DiskPressure",
            "status": "True",
            "reason": "KubeletHasDiskPressure",
            "message": "kubelet has disk pressure",
            "lastTransitionTime": now_rfc3339(),
        }
        for c in node["status"]["conditions"]
    ]
    cluster.apply(node)


def disk_pressure(cluster: SandboxCluster, name: str) -> str:
    node = must_get(cluster, "nodes", None, name)
    return str(next(c["status"] for c in node["status"]["conditions"] if c["type"] == "DiskPressure"))


def test_cleanup_job_frees_the_node(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext
) -> None:
    cluster.wait_until(lambda: must_get(cluster, "nodes", None, "sandbox-node-1").get("status"))
    under_pressure(cluster, "sandbox-node-1")
    params = {"node": "sandbox-node-1", "path": "/var/log", "namespace": "demo", "older_than_days": 3}

    _, _, dry = run(dry_ctx, "cleanup_node_disk", **params)
    assert not dry.changed and cluster.list("jobs", "demo") == []

    journal: list[dict[str, Any]] = []
    ctx.save_undo = journal.append
    _, _, result = run(ctx, "cleanup_node_disk", **params)
    assert len(journal) == 1 and "deleted files cannot be restored" in journal[0]["no_undo"]
    assert result.output["command"] == [
        "find",
        "/host/var/log",
        "-xdev",
        "-type",
        "f",
        "-mtime",
        "+3",
        "(",
        "-name",
        "*.gz",
        "-o",
        "-name",
        "*.log.[0-9]*",
        "-o",
        "-name",
        "*.old",
        ")",
        "-print",
        "-delete",
    ]
    (job,) = cluster.list("jobs", "demo")
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (
        0,
        300,
        3600,
    )
    pod_spec = spec["template"]["spec"]
    assert pod_spec["nodeName"] == "sandbox-node-1" and pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["volumes"] == [
        {"name": "host-dir", "hostPath": {"path": "/var/log", "type": "Directory"}}
    ]
    assert pod_spec["containers"][0]["securityContext"]["privileged"] is False
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"]["conditions"])
    cluster.wait_until(lambda: disk_pressure(cluster, "sandbox-node-1") == "False")
    assert not must_get(cluster, "nodes", None, "sandbox-node-1")["spec"].get("taints")


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/etc", "not in policy.node_cleanup_paths"),
        ("/var/log/../../etc", "without '..'"),
        ("var/log", "absolute"),
    ],
)
def test_paths_outside_the_allow_list_are_refused(cluster: SandboxCluster, path: str, error: str) -> None:
    ctx = policy_ctx(node_cleanup_paths=["/var/log"])
    with pytest.raises((PreconditionFailed, ValueError), match=error):
        run(ctx, "cleanup_node_disk", node="sandbox-node-1", path=path, namespace="demo")
    assert cluster.list("jobs", "demo") == []
