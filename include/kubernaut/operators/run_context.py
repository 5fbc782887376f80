"""What every kubernaut task of a run shares: the alert, the history row, the config."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from kubernaut.alert import alert_context
from kubernaut.clusters import SINGLE_CLUSTER_CONN_ID, Cluster, ClusterError, ClusterMap, run_cluster
from kubernaut.config import ConfigError, KubernautConfig, load_config
from kubernaut.history import History, HistoryUnavailable

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    conf: Mapping[str, Any]
    alert: dict[str, Any]
    config: KubernautConfig
    history: History | None
    run_id: int | None
    # The cluster every action, wait and undo of this run goes to (kubernaut.clusters).
    cluster: Cluster = field(default_factory=lambda: Cluster("", SINGLE_CLUSTER_CONN_ID))
    # The run's ``resolved_check: not_needed`` outcome as of ``open`` (read with the run row,
    # kubernaut.operators.resolved); None: none recorded then, or not read.
    resolved: dict[str, Any] | None = None
    resolved_read: bool = False

    @property
    def kube_conn_id(self) -> str:
        return self.cluster.conn_id

    @classmethod
    def open(cls, context: Any, template: str, dry_run: bool, kube_conn_id: str | None = None) -> RunContext:
        """``kube_conn_id``: the template's connection (single-cluster mode); by default the
        one the DAG's steps were built with."""
        dag_run = context["dag_run"]
        conf: Mapping[str, Any] = dag_run.conf or {}
        alert = {**alert_context(conf), **declared_target(conf)}
        try:
            config = load_config()
        except ConfigError as exc:
            # Never the defaults instead: they would drop the policy this configuration sets
            # (e.g. require_label). Failing the task (no retry) stops before anything changes.
            raise AirflowFailException(
                f"kubernaut configuration: {exc}; refusing to run with the default policy"
            ) from exc
        if kube_conn_id is None:
            kube_conn_id = _template_conn_id(context.get("dag"))
        try:
            cluster = run_cluster(conf, ClusterMap.from_config(config), kube_conn_id)
        except ClusterError as exc:  # no retry: the conf and the configuration will not change
            raise AirflowFailException(f"kubernaut cluster: {exc}") from exc
        history: History | None = History(config.history_conn_id)
        run_id: int | None = None
        resolved: dict[str, Any] | None = None
        from kubernaut.operators.resolved import KIND, NOT_NEEDED

        try:
            assert history is not None
            run_id, resolved = history.ensure_run_with_outcome(
                dag_run.dag_id,
                dag_run.run_id,
                template,
                alert,
                dry_run or bool(conf.get("dry_run")),
                cluster=cluster.name,
                kube_conn_id=cluster.conn_id,
                outcome=(KIND, NOT_NEEDED),
            )
        except (HistoryUnavailable, Exception) as exc:  # no history: read-only steps still run
            log.warning("kubernaut: history unavailable (%s): %s", config.history_conn_id, exc)
            history = None
        return cls(
            conf=conf,
            alert=alert,
            config=config,
            history=history,
            run_id=run_id,
            cluster=cluster,
            resolved=resolved,
            resolved_read=history is not None,
        )


def declared_target(conf: Mapping[str, Any]) -> dict[str, str]:
    """For an alert whose labels name no object, the template's target the intake resolved
    (``conf["target"]``, kubernaut.intake.targets) as the run's recorded kind/namespace/resource,
    so busy, cooldown and the failure blocks count this run for it. Recording only: steps
    render their objects from the alert and the parameters, never from this."""
    if alert_context(conf)["resource"]:
        return {}
    target = conf.get("target")
    if not isinstance(target, Mapping) or not all(isinstance(target.get(k), str) for k in ("kind", "name")):
        return {}
    return {
        "kind": target["kind"][:63],
        "namespace": str(target.get("namespace") or "")[:253],
        "resource": target["name"][:253],
    }


def _template_conn_id(dag: Any) -> str:
    """The Kubernetes connection the DAG's steps were built with (the template's)."""
    for task in getattr(dag, "tasks", None) or []:
        conn_id = getattr(getattr(task, "spec", None), "kube_conn_id", None)
        if isinstance(conn_id, str) and conn_id:
            return conn_id
    return SINGLE_CLUSTER_CONN_ID
