"""A seeded sandbox cluster for testing Kubernetes actions, reached the way the operator
reaches a cluster: an Airflow connection of type ``kubernetes`` naming a kubeconfig, read by
the cncf-kubernetes provider's ``KubernetesHook``. No real cluster is touched: the connection
is set (and restored afterwards) for the duration of the ``with`` block."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernaut.actions.base import ActionContext
from kubernaut.testing.kit import make_context
from kubernaut.testing.services import connection_env_name

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from kubernaut.sandbox import SandboxCluster

SANDBOX_CONN_ID = "kubernetes_default"


@dataclass
class KubeSandbox:
    """``cluster``: the running SandboxCluster (``get``, ``list``, ``apply``, ``wait_until``,
    ``inject_fault``); ``conn_id``: the Airflow connection that reaches it."""

    cluster: SandboxCluster
    kubeconfig: Path
    conn_id: str = SANDBOX_CONN_ID

    def context(self, **kwargs: Any) -> ActionContext:
        """An ActionContext whose ``api_client`` talks to the sandbox; keywords as for
        ``make_context`` (``dry_run``, ``config``, ``journal``, ``prior_undo``, ...)."""
        kwargs.setdefault("kube_conn_id", self.conn_id)
        return make_context(**kwargs)

    def api_client(self) -> ApiClient:
        """A new client for the sandbox, built as the operator builds one (KubernetesHook)."""
        return self.context().api_client

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object as stored (camelCase), or None."""
        return self.cluster.get(kind, namespace, name)


@contextmanager
def kube_sandbox(
    workdir: Path, *, conn_id: str = SANDBOX_CONN_ID, seed: bool = True, **options: Any
) -> Iterator[KubeSandbox]:
    """Start a sandbox cluster (``options`` go to ``SandboxCluster``, e.g. ``pod_ready_delay``
    or ``crds``), seed it with the demo objects (namespace ``demo``: Deployments ``web`` (3
    replicas) and ``api`` (2), ConfigMap ``web-config``, Services; two Nodes) and point the
    Airflow connection ``conn_id`` at it."""
    from kubernaut.sandbox import SandboxCluster

    options.setdefault("pod_ready_delay", 0.1)
    variable = connection_env_name(conn_id)
    previous = os.environ.get(variable)
    with SandboxCluster(**options) as cluster:
        kubeconfig = cluster.write_kubeconfig(workdir / f"{conn_id}.kubeconfig")
        os.environ[variable] = json.dumps(
            {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}
        )
        try:
            if seed:
                cluster.seed_demo()
            yield KubeSandbox(cluster, kubeconfig, conn_id)
        finally:
            if previous is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = previous
