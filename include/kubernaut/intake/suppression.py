"""Symptom suppression: act on the cause, not on its symptoms.

An alert about a pod is decided ``suppressed`` when

* the pod's node (read from the cluster, never from the alert) has an active node-level alert
  (``suppression.node_alerts``: KubeNodeNotReady, KubeNodeUnreachable, NodeFilesystem* ...), or
* the pod's owner (its Deployment, StatefulSet, DaemonSet, ...) is being remediated already: a
  run for the owner is active or being launched (history), or a firing alert about the owner
  that a template answers is in the same webhook payload (decided in the same trip, maybe
  after this one).

The decision names the root-cause alert (or run). Node alerts come from three sources, each
optional: the other alerts of the same webhook payload, Alertmanager's API (``GET
/api/v2/alerts?active=true``, once per payload) and the alerts the intake recorded recently
(history, ``suppression.recent``). Node alerts are matched to nodes by their ``node`` label
(kube-state-metrics), else ``instance`` without its port (node-exporter), and, in multi-cluster
mode, to the cluster their ``cluster_label`` names (``kubernaut.clusters``): a node of cluster A
is never the root cause for a pod of cluster B whose node has the same name.

Nothing here fails an alert: a source that cannot be read is left out (and said so in the
reason of a decision it could have changed); the run-time check of the pod actions
(``kubernaut.kube.node_health``) is the safety net.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kubernaut.alert import Target, derive_target
from kubernaut.clusters import ClusterMap, NoCluster
from kubernaut.config import SuppressionConfig
from kubernaut.intake.payload import Alert

log = logging.getLogger(__name__)
ALERTMANAGER_TIMEOUT = 3.0
LAUNCH_GRACE = timedelta(minutes=10)
POD_OWNER_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet")


def alert_node(labels: Mapping[str, str]) -> str:
    """The node a node-level alert is about: ``node``, else ``instance`` without its port."""
    if labels.get("node"):
        return labels["node"]
    instance = labels.get("instance", "")
    if instance.startswith("["):  # [ipv6]:port
        return instance[1:].partition("]")[0]
    return instance.rpartition(":")[0] if re.search(r":\d+$", instance) else instance


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def patterns_regex(patterns: Iterable[str]) -> str:
    """The patterns as one Alertmanager regex (``=~`` is fully anchored)."""
    return "|".join(re.escape(p).replace(r"\*", ".*").replace(r"\?", ".") for p in patterns)


@dataclass(frozen=True)
class RootCause:
    alertname: str
    node: str
    fingerprint: str
    source: str  # payload | alertmanager | history
    cluster: str = ""  # multi-cluster: the cluster the node alert is about

    def to_dict(self) -> dict[str, Any]:
        found = {
            "alertname": self.alertname,
            "node": self.node,
            "fingerprint": self.fingerprint,
            "source": self.source,
        }
        return {**found, "cluster": self.cluster} if self.cluster else found


@dataclass(frozen=True)
class Placement:
    """Where a pod runs and what owns it, as the cluster says."""

    node: str
    owner: Target | None


class ClusterLookup(Protocol):
    def placement(self, namespace: str, pod: str) -> Placement | None: ...


class KubeLookup:
    """Pod placement from a Kubernetes API client (the template's connection, or a kubeconfig)."""

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client

    @classmethod
    def from_connection(cls, conn_id: str) -> KubeLookup:
        """Only a defined connection: without one, the provider's hook would fall back to
        in-cluster or ~/.kube/config credentials (slowly), which the intake must not guess."""
        from airflow.sdk import BaseHook

        from kubernaut.actions.base import default_kube_client

        BaseHook.get_connection(conn_id)  # AirflowNotFoundException when it is not defined
        return cls(default_kube_client(conn_id))

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None) -> KubeLookup:
        from kubernetes import config

        return cls(config.new_client_from_config(config_file=path, context=context))

    def placement(self, namespace: str, pod: str) -> Placement | None:
        from kubernetes import client

        from kubernaut.kube.pods import controller_of, deployment_of_replicaset, read_pod

        found = read_pod(client.CoreV1Api(self.api_client), namespace, pod)
        if found is None:
            return None
        owner = controller_of(found.metadata)
        target = None
        if owner is not None:
            kind, name = owner.kind, owner.name
            if kind == "ReplicaSet":
                deployment = deployment_of_replicaset(client.AppsV1Api(self.api_client), namespace, name)
                if deployment:
                    kind, name = "Deployment", deployment
            target = Target(kind, namespace, name)
        return Placement(node=(found.spec.node_name if found.spec else None) or "", owner=target)


class SuppressionHistory(Protocol):
    def recent_alerts(self, patterns: list[str], since: datetime) -> list[dict[str, Any]]: ...
    def active_runs(self, namespace: str, name: str, *, cluster: str = "") -> list[dict[str, Any]]: ...
    def recent_launches(
        self, namespace: str, name: str, since: datetime, *, cluster: str = ""
    ) -> list[dict[str, Any]]: ...


AlertSource = Callable[[list[str]], list[dict[str, Any]]]


def alertmanager_source(conn_id: str | None = None, url: str | None = None) -> AlertSource:
    """Active alerts whose name matches the patterns, from Alertmanager's API v2."""

    def fetch(patterns: list[str]) -> list[dict[str, Any]]:
        from kubernaut.services.alertmanager import AlertmanagerClient, LabelMatcher
        from kubernaut.services.connection import Endpoint, endpoint_from_connection
        from kubernaut.services.http import ServiceClient

        endpoint = Endpoint.from_url(url) if url else endpoint_from_connection(str(conn_id))
        am = AlertmanagerClient(ServiceClient(endpoint, timeout=ALERTMANAGER_TIMEOUT))
        try:
            matcher = LabelMatcher(name="alertname", value=patterns_regex(patterns), op="=~")
            return am.alerts([matcher])
        finally:
            am.close()

    return fetch


@dataclass
class Suppressor:
    """Judges the alerts of one webhook payload (sources read at most once per payload)."""

    config: SuppressionConfig
    payload: list[Alert] = field(default_factory=list)
    alertmanager: AlertSource | None = None
    cluster: Callable[[str], ClusterLookup | None] | None = None  # by the template's kube conn id
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    clusters: ClusterMap | None = None  # multi-cluster: which cluster each node alert is about
    # Does a template answer an alert with these labels? (payload alerts about a pod's owner)
    routed: Callable[[Mapping[str, str]], bool] | None = None
    _active: list[RootCause] | None = None
    _problems: list[str] = field(default_factory=list)

    def causes(self, history: SuppressionHistory | None) -> list[RootCause]:
        """Active node-level alerts from every source, read once."""
        if self._active is not None:
            return self._active
        patterns = self.config.node_alerts
        found: dict[str, RootCause] = {}

        def add(labels: Mapping[str, str], fingerprint: str, source: str) -> None:
            name, node = labels.get("alertname", ""), alert_node(labels)
            cluster = self.cluster_of(labels)
            if node and cluster is not None and matches_any(name, patterns) and fingerprint not in found:
                cause = RootCause(name, node, fingerprint, source, cluster)
                found[fingerprint or f"{source}:{cluster}:{name}:{node}"] = cause

        for a in self.payload:
            if a.status == "firing":
                add(a.labels, a.fingerprint, "payload")
        if self.alertmanager is not None and patterns:
            try:
                for found_alert in self.alertmanager(patterns):
                    labels = found_alert.get("labels") or {}
                    add(labels, str(found_alert.get("fingerprint", "")), "alertmanager")
            except Exception as exc:  # a source left out, said so; never fails the alert
                self._problems.append(f"Alertmanager not read ({exc})")
                log.warning("kubernaut intake: suppression: Alertmanager not read: %s", exc)
        if history is not None and patterns:
            try:
                since = self.clock() - self.config.recent
                for row in history.recent_alerts(patterns, since):
                    labels = row.get("labels") or {}
                    add(
                        labels if isinstance(labels, Mapping) else {},
                        str(row.get("fingerprint", "")),
                        "history",
                    )
            except Exception as exc:
                self._problems.append(f"history not read ({exc})")
                log.warning("kubernaut intake: suppression: recent alerts not read: %s", exc)
        self._active = list(found.values())
        return self._active

    def cluster_of(self, labels: Mapping[str, str]) -> str | None:
        """The cluster an alert is about ("" in single-cluster mode); None when it names no
        configured cluster (it cannot be the root cause of anything the intake acts on)."""
        if self.clusters is None or not self.clusters.multi:
            return ""
        chosen = self.clusters.choose(labels, "")
        return None if isinstance(chosen, NoCluster) else chosen.name

    def judge(
        self,
        alert: Alert,
        target: Target,
        kube_conn_id: str,
        history: SuppressionHistory | None,
        cluster: str = "",
    ) -> tuple[str, dict[str, Any]] | None:
        """``(reason, root_cause)`` when the alert is a symptom, else None. Only pod alerts are
        symptoms here; a node alert itself is never suppressed by these rules."""
        if (
            not self.config.enabled
            or target.kind != "Pod"
            or matches_any(alert.alertname, self.config.node_alerts)
        ):
            return None
        lookup = self.cluster(kube_conn_id) if self.cluster is not None else None
        if lookup is None:
            return None
        try:
            placement = lookup.placement(target.namespace, target.name)
        except Exception as exc:
            log.warning("kubernaut intake: suppression: cannot read pod %s: %s", target, exc)
            return None
        if placement is None:
            return None
        if placement.node:
            for cause in self.causes(history):
                same_node = cause.node == placement.node and cause.cluster == cluster
                if same_node and cause.fingerprint != alert.fingerprint:
                    reason = (
                        f"symptom of node {cause.node}: pod {target.namespace}/{target.name} runs there and "
                        f"{cause.alertname} is active for it (root cause, seen via {cause.source}, "
                        f"fingerprint {cause.fingerprint or '?'}); remediate the node, not its pods"
                    )
                    return reason, {"kind": "node_alert", **cause.to_dict()}
        owner = placement.owner
        if owner is None or owner.kind not in POD_OWNER_KINDS:
            return None
        run = self._owner_run(history, owner, cluster) if history is not None else None
        if run is not None:
            alertname = str(run.get("alert_name") or "")
            reason = (
                f"symptom of {owner}: the owner of pod {target.namespace}/{target.name} is being "
                f"remediated by run {run.get('dag_run_id', '?')} "
                f"(root cause: {alertname or 'its alert'}); remediate the owner, not its pods"
            )
            owner_cause = {
                "kind": "owner_run",
                "owner": owner.as_dict(),
                "dag_run_id": run.get("dag_run_id", ""),
                "alertname": alertname,
            }
            fingerprint = run.get("fingerprint") or run.get("alert_fingerprint")  # launch | run row
            if fingerprint:
                owner_cause["fingerprint"] = str(fingerprint)
            return reason, owner_cause
        found = self._owner_alert(alert, owner, cluster)
        if found is not None:
            reason = (
                f"symptom of {owner}: the owner of pod {target.namespace}/{target.name} has its own "
                f"alert {found.alertname} in this payload (root cause, fingerprint "
                f"{found.fingerprint or '?'}); remediate the owner, not its pods"
            )
            owner_alert = {
                "kind": "owner_alert",
                "owner": owner.as_dict(),
                "alertname": found.alertname,
                "fingerprint": found.fingerprint,
                "source": "payload",
            }
            return reason, owner_alert
        return None

    def _owner_run(self, history: SuppressionHistory, owner: Target, cluster: str) -> dict[str, Any] | None:
        """A run for the owner (same kind, same cluster) that is running, or launched and not
        yet recorded by its DAG; its alert's name and fingerprint when the history has them."""
        scope = {"cluster": cluster} if cluster else {}  # multi-cluster: the owner in the same cluster

        def same_kind(row: Mapping[str, Any]) -> bool:  # a Service or HPA of the same name is not it
            return str(row.get("target_kind") or owner.kind) == owner.kind

        active = [r for r in history.active_runs(owner.namespace, owner.name, **scope) if same_kind(r)]
        if active:
            return active[0]
        now = self.clock()
        for launch in history.recent_launches(owner.namespace, owner.name, now - LAUNCH_GRACE, **scope):
            if launch.get("run_status") is None and same_kind(launch):
                return dict(launch)
        return None

    def _owner_alert(self, alert: Alert, owner: Target, cluster: str) -> Alert | None:
        """A firing alert of the same payload about the pod's owner (same cluster) that a
        template answers: its run is the remedy, whichever of the two is decided first."""
        if self.routed is None:
            return None
        for other in self.payload:
            if other.status != "firing" or other.fingerprint == alert.fingerprint:
                continue
            about = derive_target(other.labels)
            if (about.kind, about.namespace, about.name) != (owner.kind, owner.namespace, owner.name):
                continue
            if self.cluster_of(other.labels) != cluster:
                continue
            if self.routed(other.labels):
                return other
        return None

    @property
    def problems(self) -> list[str]:
        return list(self._problems)


class CachedLookups:
    """``KubeLookup`` per Kubernetes connection id, built once; a connection that cannot be
    built (not configured here) is not retried for ``retry_after`` seconds."""

    def __init__(
        self, build: Callable[[str], ClusterLookup] = KubeLookup.from_connection, retry_after: float = 30.0
    ) -> None:
        self._build = build
        self._retry_after = retry_after
        self._lookups: dict[str, ClusterLookup] = {}
        self._failed: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, conn_id: str) -> ClusterLookup | None:
        with self._lock:
            if conn_id in self._lookups:
                return self._lookups[conn_id]
            if time.monotonic() - self._failed.get(conn_id, -1e9) < self._retry_after:
                return None
            try:
                lookup = self._lookups[conn_id] = self._build(conn_id)
            except Exception as exc:
                self._failed[conn_id] = time.monotonic()
                log.warning("kubernaut intake: suppression: no cluster access through %s: %s", conn_id, exc)
                return None
            return lookup


class CachedSource:
    """An alert source whose failures are not retried for ``retry_after`` seconds (a missing
    Alertmanager connection must not cost every payload a lookup)."""

    def __init__(self, source: AlertSource, retry_after: float = 30.0) -> None:
        self._source = source
        self._retry_after = retry_after
        self._failed_at = -1e9
        self._error = ""

    def __call__(self, patterns: list[str]) -> list[dict[str, Any]]:
        if time.monotonic() - self._failed_at < self._retry_after:
            raise RuntimeError(f"{self._error} (not retried for {self._retry_after:.0f}s)")
        try:
            return self._source(patterns)
        except Exception as exc:
            self._failed_at, self._error = time.monotonic(), str(exc)
            raise
