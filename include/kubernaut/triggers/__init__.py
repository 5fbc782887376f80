"""Airflow triggers: waits that run in the triggerer, never in a worker slot.

The triggerer imports these from the installed package (it does not load DAG bundles).
"""

# A trigger never fires sooner than this after the task deferred. Airflow 3.3 fails a task
# resumed before the scheduler has processed the executor's "success" of the process that
# deferred it (apache/airflow#67287, #72716: the stale-event guard covers SCHEDULED only); a
# wait that is already over when the trigger first looks would otherwise race that event.
SETTLE_SECONDS = 5.0
