"""The demo cluster content used by `seed_demo()` and `serve --seed demo`."""

from __future__ import annotations

from typing import Any

NODES = ("sandbox-node-1", "sandbox-node-2")


def _deployment(name: str, image: str, replicas: int, port: int, memory: str) -> dict[str, Any]:
    labels = {"app": name, "tier": "frontend" if name == "web" else "backend"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "demo", "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": image,
                            "ports": [{"containerPort": port, "name": "http"}],
                            "resources": {
                                "requests": {"cpu": "50m", "memory": memory},
                                "limits": {"memory": memory},
                            },
                        }
                    ]
                },
            },
        },
    }


def demo_manifests() -> list[dict[str, Any]]:
    manifests: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}},
    ]
    for node in NODES:
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node,
                    "labels": {
                        "kubernetes.io/hostname": node,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                    },
                },
                "spec": {},
            }
        )
    manifests += [
        _deployment("web", "nginx:1.27", 3, 80, "128Mi"),
        _deployment("api", "ghcr.io/example/api:1.4.2", 2, 8080, "256Mi"),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web-config", "namespace": "demo"},
            "data": {"LOG_LEVEL": "info", "UPSTREAM": "http://api:8080"},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 80}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "api", "namespace": "demo"},
            "spec": {
                "selector": {"app": "api"},
                "ports": [{"name": "http", "port": 8080, "targetPort": 8080}],
            },
        },
    ]
    return manifests
