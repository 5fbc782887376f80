from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from kubernaut.sandbox import SandboxCluster

READY_DELAY = 0.1


@pytest.fixture
def cluster() -> Iterator[SandboxCluster]:
    with SandboxCluster(pod_ready_delay=READY_DELAY, crash_interval=0.3, tick=0.05) as sandbox:
        sandbox.seed_demo()
        sandbox.wait_until(
            lambda: deployment_ready(sandbox, "demo", "web") and deployment_ready(sandbox, "demo", "api")
        )
        yield sandbox


@pytest.fixture
def kubeconfig(cluster: SandboxCluster, tmp_path: Path) -> Path:
    return cluster.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    yield api
    api.close()


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture
def policy(api_client: client.ApiClient) -> client.PolicyV1Api:
    return client.PolicyV1Api(api_client)


def deployment_ready(cluster: SandboxCluster, namespace: str, name: str) -> bool:
    deployment = cluster.get("deployments", namespace, name)
    if deployment is None:
        return False
    status: dict[str, Any] = deployment.get("status") or {}
    desired = deployment["spec"].get("replicas", 1)
    return bool(
        status.get("observedGeneration") == deployment["metadata"]["generation"]
        and status.get("updatedReplicas", 0) == desired
        and status.get("replicas", 0) == desired
        and status.get("availableReplicas", 0) == desired
    )


def ready_pods(cluster: SandboxCluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    return [
        pod
        for pod in cluster.list("pods", namespace, labels=selector)
        if not pod["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod.get("status", {}).get("conditions", [])
        )
    ]
