"""Which cluster an alert is about, and the Airflow Kubernetes connection that reaches it.

Two modes, chosen by the configuration (``kubernaut.config``):

* **single-cluster** (no ``clusters:``): every run uses its template's ``kubernetes_conn_id``
  (``kubernetes_default`` unless the template says otherwise), whatever labels the alert has;
  the run's conf carries no cluster, the cluster of every record is ``""``. As before.
* **multi-cluster** (``clusters: {eks-prod: k8s_eks_prod, ...}``): the alert label
  ``cluster_label`` (default ``cluster``) names the cluster; its connection replaces the
  template's. A name that is not configured is refused (``no_cluster``), never sent to
  another cluster. An alert without the label (or with an empty value) goes to
  ``default_cluster`` if one is configured, else it is refused too.

The intake writes the choice into the run's conf (``conf["cluster"] = {"name", "conn_id"}``);
every task of the run resolves it again against the configuration it loads (``run_cluster``)
and fails closed when the two disagree: a conf can be written by anyone allowed to trigger
the DAG, and must never reach a connection the configuration does not map to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernaut.config import KubernautConfig

DEFAULT_CLUSTER_LABEL = "cluster"
SINGLE_CLUSTER_CONN_ID = "kubernetes_default"
CONF_KEY = "cluster"  # conf["cluster"] = {"name": ..., "conn_id": ...}
# Airflow's own rule for connection ids (airflow.utils.helpers.validate_key).
CONN_ID_RE = re.compile(r"^[\w.-]{1,250}$")
MAX_NAME = 253


class ClusterError(ValueError):
    """The run's cluster cannot be resolved (or its conf disagrees with the configuration)."""


@dataclass(frozen=True)
class Cluster:
    """``name``: the cluster ("" in single-cluster mode); ``conn_id``: its Kubernetes connection."""

    name: str
    conn_id: str

    def to_conf(self) -> dict[str, str]:
        return {"name": self.name, "conn_id": self.conn_id}


@dataclass(frozen=True)
class NoCluster:
    """Why an alert has no cluster to go to (the intake decides ``no_cluster``)."""

    name: str  # the label's value, "" when the alert had none
    reason: str


def settings_problems(clusters: Mapping[str, str], label: str, default: str | None) -> list[str]:
    """What is wrong with the cluster settings of a configuration (empty: nothing)."""
    problems = []
    for name, conn_id in clusters.items():
        if not name.strip() or name != name.strip() or len(name) > MAX_NAME:
            problems.append(
                f"clusters: {name!r}: a cluster name is a non-empty label value without surrounding blanks"
            )
        if not CONN_ID_RE.match(conn_id):
            problems.append(
                f"clusters.{name}: {conn_id!r} is not an Airflow connection id (letters, digits, _ . -)"
            )
    if not label.strip() or label != label.strip():
        problems.append(f"cluster_label: {label!r}: expected an alert label name")
    if default is not None:
        if not clusters:
            problems.append(f"default_cluster: {default!r} set but no clusters are configured")
        elif default not in clusters:
            known = ", ".join(sorted(clusters))
            problems.append(f"default_cluster: {default!r} is not one of the configured clusters ({known})")
    return problems


@dataclass(frozen=True)
class ClusterMap:
    """The configured clusters; empty: single-cluster mode."""

    clusters: Mapping[str, str]
    label: str = DEFAULT_CLUSTER_LABEL
    default: str | None = None

    @classmethod
    def from_config(cls, config: KubernautConfig) -> ClusterMap:
        return cls(dict(config.clusters), config.cluster_label, config.default_cluster)

    @property
    def multi(self) -> bool:
        return bool(self.clusters)

    def choose(self, labels: Mapping[str, str], template_conn_id: str) -> Cluster | NoCluster:
        """The cluster an alert with ``labels`` is about (see the module docstring)."""
        if not self.multi:
            return Cluster("", template_conn_id)
        name = str(labels.get(self.label) or "")
        if not name:
            if self.default is None:
                return NoCluster(
                    "",
                    f"the alert has no {self.label!r} label and no default_cluster is configured "
                    f"(clusters: {', '.join(sorted(self.clusters))}); refusing to guess",
                )
            return Cluster(self.default, self.clusters[self.default])
        conn_id = self.clusters.get(name)
        if conn_id is None:
            return NoCluster(
                name,
                f"cluster {name!r} (label {self.label!r}) is not configured "
                f"(clusters: {', '.join(sorted(self.clusters))}); never sent to another cluster",
            )
        return Cluster(name, conn_id)


def _alert_labels(conf: Mapping[str, Any]) -> Mapping[str, str]:
    raw = conf.get("alert", conf)
    labels = raw.get("labels") if isinstance(raw, Mapping) else None
    if not isinstance(labels, Mapping):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in labels.items()}


def run_cluster(conf: Mapping[str, Any] | None, clusters: ClusterMap, template_conn_id: str) -> Cluster:
    """The cluster (and connection) every task of a run uses, from its conf and the
    configuration; ``ClusterError`` when they cannot agree (fail closed)."""
    conf = conf or {}
    carried = conf.get(CONF_KEY)
    if carried is None:
        # Launched without the intake's choice (a manual trigger, an older intake): the same
        # choice from the alert's labels.
        choice = clusters.choose(_alert_labels(conf), template_conn_id)
        if isinstance(choice, NoCluster):
            raise ClusterError(f"no cluster for this run: {choice.reason}")
        return choice
    if not isinstance(carried, Mapping) or not all(
        isinstance(carried.get(k), str) for k in ("name", "conn_id")
    ):
        raise ClusterError(
            f"conf.{CONF_KEY}: expected {{'name': <cluster>, 'conn_id': <connection>}}, got {carried!r}"
        )
    name, conn_id = str(carried["name"]), str(carried["conn_id"])
    if not clusters.multi:
        if name or conn_id != template_conn_id:
            raise ClusterError(
                f"conf.{CONF_KEY} names cluster {name!r} (connection {conn_id!r}) but no clusters are "
                f"configured: this run would use {template_conn_id!r}; refusing to guess"
            )
        return Cluster("", template_conn_id)
    expected = clusters.clusters.get(name)
    if expected is None:
        raise ClusterError(
            f"conf.{CONF_KEY} names cluster {name!r}, which is not configured "
            f"(clusters: {', '.join(sorted(clusters.clusters))})"
        )
    if expected != conn_id:
        raise ClusterError(
            f"conf.{CONF_KEY}: cluster {name!r} is configured with connection {expected!r}, "
            f"the run names {conn_id!r}; refusing to use either"
        )
    return Cluster(name, conn_id)
