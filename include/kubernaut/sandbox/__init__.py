"""
A sandbox Kubernetes cluster: a kmock-based fake API server that real clients talk to over HTTP.

    with SandboxCluster(pod_ready_delay=0.3) as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        cluster.seed_demo()
        cluster.inject_fault("crashloop", namespace="demo", deployment="web")
"""

from kubernaut.sandbox.cluster import SandboxCluster
from kubernaut.sandbox.faults import FAULT_TYPES
from kubernaut.sandbox.server import SandboxEmulator

__all__ = ["FAULT_TYPES", "SandboxCluster", "SandboxEmulator"]
