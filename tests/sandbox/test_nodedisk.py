"""The sandbox's kubelet disk pressure: a node's DiskPressure (and the disk-pressure taint) is
relieved only by a pod on that node that mounts a hostPath and Succeeded after the pressure
began (a cleanup Job), not by other pods."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from kubernaut.sandbox import SandboxCluster
from kubernaut.sandbox.nodedisk import DISK_PRESSURE_TAINT
from kubernaut.sandbox.store import now_rfc3339


@pytest.fixture
def sandbox() -> Iterator[SandboxCluster]:
    with SandboxCluster(pod_ready_delay=0.05, tick=0.05) as cluster:
        for name in ("node-a", "node-b"):
            cluster.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {}})
        cluster.wait_until(lambda: (cluster.get("nodes", None, "node-b") or {}).get("status"))
        node = cluster.get("nodes", None, "node-a")
        assert node is not None
        node["spec"]["taints"] = [{"key": DISK_PRESSURE_TAINT, "effect": "NoSchedule"}]
        for c in node["status"]["conditions"]:
            if c["type"] == "DiskPressure":
                c.update(status="True", reason="KubeletHasDiskPressure", lastTransitionTime=now_rfc3339())
        cluster.apply(node)
        yield cluster


def job(name: str, node: str, host_path: bool) -> dict[str, Any]:
    volumes = [{"name": "h", "hostPath": {"path": "/var/log"}}] if host_path else []
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "template": {
                "spec": {
                    "nodeName": node,
                    "restartPolicy": "Never",
                    "volumes": volumes,
                    "containers": [{"name": "c", "image": "busybox"}],
                }
            }
        },
    }


def pressure(sandbox: SandboxCluster) -> str:
    node = sandbox.get("nodes", None, "node-a") or {}
    return str(next(c["status"] for c in node["status"]["conditions"] if c["type"] == "DiskPressure"))


def complete(sandbox: SandboxCluster, name: str) -> bool:
    found = sandbox.get("jobs", "default", name) or {}
    return any(c["type"] == "Complete" for c in (found.get("status") or {}).get("conditions") or [])


def test_only_a_hostpath_job_on_the_node_relieves_it(sandbox: SandboxCluster) -> None:
    sandbox.apply(job("elsewhere", "node-b", True))
    sandbox.apply(job("no-mount", "node-a", False))
    sandbox.wait_until(lambda: complete(sandbox, "elsewhere") and complete(sandbox, "no-mount"))
    time.sleep(0.3)  # a few controller ticks
    assert pressure(sandbox) == "True"
    sandbox.apply(job("cleanup", "node-a", True))
    sandbox.wait_until(lambda: pressure(sandbox) == "False")
    node = sandbox.get("nodes", None, "node-a")
    assert node is not None and not node["spec"].get("taints")
