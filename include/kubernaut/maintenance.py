"""The ``kubernaut_maintenance`` DAG: once a day, prune the history to what the configuration's
``retention:`` keeps (kubernaut.history.retention; the same as ``kubernaut history prune``).
Defined in its own DAG file (dags/kubernaut_maintenance.py), so parsing it costs the template
DAGs nothing and a worker parsing for one remediation DAG never builds it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, BaseOperator

MAINTENANCE_DAG_ID = "kubernaut_maintenance"
PRUNE_TASK = "prune_history"


class KubernautPruneOperator(BaseOperator):
    """Delete the history rows older than their retention; returns the counts per table."""

    def __init__(self, *, count_only: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.count_only = count_only  # a dry run (BaseOperator has a dry_run method)

    def execute(self, context: Any) -> dict[str, Any]:
        from kubernaut.config import load_config
        from kubernaut.history import History
        from kubernaut.history.retention import prune

        config = load_config()  # a broken configuration fails the task, never prunes by defaults
        history = History(config.history_conn_id)
        try:
            report = prune(history, config.retention, dry_run=self.count_only)
        finally:
            history.close()
        for table, rows in report.deleted.items():
            self.log.info(
                "kubernaut: %s: %s %d rows", table, "would delete" if self.count_only else "deleted", rows
            )
        self.log.info("kubernaut: history pruned in %.2fs (%d batches)", report.seconds, report.batches)
        return report.to_dict()


def maintenance_dag(schedule: str | None = "@daily") -> DAG:
    dag = DAG(
        dag_id=MAINTENANCE_DAG_ID,
        description="Keeps the remediation history to what the configuration's retention says",
        schedule=schedule,
        start_date=datetime(2024, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["kubernaut-maintenance"],  # not "kubernaut": that tag lists the remediation DAGs
        doc_md=(
            "Once a day, deletes the history rows older than the configuration's `retention:` "
            "(per table; 0 or null keeps them for ever), in short batches; a run still in flight or "
            "awaiting its assessment is kept. The same as `kubernaut history prune` "
            "(`--dry-run` counts without deleting). See docs/operations.md."
        ),
    )
    with dag:
        KubernautPruneOperator(task_id=PRUNE_TASK, retries=2, retry_delay=timedelta(minutes=5))
    return dag
