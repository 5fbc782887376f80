"""collect_cluster_health over HTTP: against the sandbox (a node the kubelet stopped reporting
for), and against a degraded API server (a real HTTP server answering as one does when etcd
fails: /readyz 500 with its verbose check list, pods forbidden, an APIService unavailable),
where every part that can be read is reported and every part that cannot says why."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from kubernaut.actions import ActionContext
from kubernaut.config import KubernautConfig
from kubernaut.sandbox import SandboxCluster
from tests.actions.k8s_helpers import run

READYZ_FAILED = (
    "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[+]poststarthook/start-informers ok\n"
    "readyz check failed\n"
)
NODES = {
    "kind": "NodeList",
    "apiVersion": "v1",
    "metadata": {},
    "items": [
        {"metadata": {"name": "cp-1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {
            "metadata": {"name": "worker-1"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]},
        },
    ],
}
APISERVICES = {
    "kind": "APIServiceList",
    "apiVersion": "apiregistration.k8s.io/v1",
    "metadata": {},
    "items": [
        {
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "status": {
                "conditions": [{"type": "Available", "status": "False", "reason": "FailedDiscoveryCheck"}]
            },
        },
        {
            "metadata": {"name": "v1.apps"},
            "status": {"conditions": [{"type": "Available", "status": "True"}]},
        },
    ],
}


class DegradedApiServer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/readyz":
            self._send(500, READYZ_FAILED, "text/plain")
        elif path == "/livez":
            self._send(200, "ok", "text/plain")
        elif path == "/api/v1/nodes":
            self._send(200, json.dumps(NODES))
        elif path == "/api/v1/events":
            self._send(
                200, json.dumps({"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": []})
            )
        elif path == "/apis/apiregistration.k8s.io/v1/apiservices":
            self._send(200, json.dumps(APISERVICES))
        else:  # e.g. the kube-system pods: this client may not list them
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Forbidden",
                "code": 403,
            }
            self._send(403, json.dumps(status))

    def _send(self, code: int, body: str, content_type: str = "application/json") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def degraded() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), DegradedApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_degraded_api_server_is_reported_part_by_part(degraded: str) -> None:
    configuration = client.Configuration()
    configuration.host = degraded
    api = client.ApiClient(configuration)
    ctx = ActionContext(
        timeout=20,
        logger=logging.getLogger("test"),
        kube_client_factory=lambda _: api,
        _config=KubernautConfig(),
    )
    _, _, result = run(ctx, "collect_cluster_health")
    out = result.output
    assert out["readyz"]["ok"] is False and out["readyz"]["status"] == 500
    assert out["readyz"]["failed_checks"] == ["etcd"]
    assert out["livez"] == {"ok": True, "status": 200, "failed_checks": [], "text": "ok"}
    assert out["nodes"] == {"total": 2, "ready": 1, "not_ready": ["worker-1"]}
    assert out["control_plane"] == {"error": "cannot list pods in kube-system: 403 Forbidden"}
    assert out["apiservices"]["unavailable"] == [
        {"name": "v1beta1.metrics.k8s.io", "reason": "FailedDiscoveryCheck", "message": None}
    ]
    assert out["summary"] == (
        "API server health: failing checks ['etcd']; nodes not Ready: worker-1; "
        "APIServices unavailable: v1beta1.metrics.k8s.io"
    )
    assert result.changed is False


def test_the_sandbox_cluster_is_healthy_until_a_kubelet_stops(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    def nodes_ready() -> bool:  # the sandbox's kubelets post the seeded nodes' status shortly after
        return all(
            any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (n.get("status") or {}).get("conditions", [])
            )
            for n in cluster.list("nodes")
        )

    cluster.wait_until(nodes_ready, timeout=20)
    _, _, healthy = run(ctx, "collect_cluster_health", max_events=5)
    assert healthy.output["readyz"]["ok"] and healthy.output["livez"]["ok"]
    assert healthy.output["nodes"] == {"total": 2, "ready": 2, "not_ready": []}
    assert healthy.output["summary"].startswith("API server ready and live"), healthy.output

    from kubernaut.simulate.engine import node_not_ready

    node_not_ready(cluster, "sandbox-node-2")
    _, _, degraded = run(ctx, "collect_cluster_health", max_events=5)
    assert degraded.output["nodes"]["not_ready"] == ["sandbox-node-2"]
    assert "nodes not Ready: sandbox-node-2" in degraded.output["summary"]
