"""The Airflow settings of the production shape, in one place.

``SHARED`` is what ``docker-compose.yaml`` sets in its ``x-airflow-common`` environment and
what ``kubernaut stack`` gives every component; ``tests/stack/test_compose.py`` checks that the
two are equal. What differs between a compose deployment and processes on one machine (host
names, ports, paths, secrets) is named in ``PER_INSTALLATION`` and computed by
:func:`stack_environment`.

Recovery after a killed worker or scheduler is governed by Airflow's own settings; Airflow's
defaults take minutes (the orphaned-task check runs every 300 s and a task instance without a
heartbeat is failed after 300 s). The values below bring it under 30 s:

- a task's supervisor heartbeats every ``[workers] min_heartbeat_interval`` (3 s); after
  ``task_instance_heartbeat_timeout`` (10 s: three missed heartbeats; checked every 3 s) the
  scheduler fails the attempt and the task's own ``retries`` put it on another worker;
- the scheduler heartbeats every 2 s and is taken for dead after 10 s without one; a new
  scheduler then adopts the dead one's tasks at its next orphan check (every 5 s): only then
  may it fail those without heartbeat (a scheduler looks only at tasks it queued or adopted);
- Celery acknowledges a task message only once the task is done (``task_acks_late``) and takes
  one message per free process (prefetch 1): a worker killed with messages in hand does not
  keep other tasks from running; Redis hands an unacknowledged message out again after the
  visibility timeout (30 min: no remediation step runs that long in a worker slot, waits are
  deferred to the triggerer).
"""

from __future__ import annotations

# A task's calls to the Execution API wait this long (Airflow: 5 s) before retrying. On a busy
# api-server the call that starts a task can take longer and still succeed; its retry is then
# refused (the task already runs) and the step fails before it began: seen in CI, where the
# remediation then rolled back for nothing. A slow answer is better than a retry storm.
EXECUTION_API_TIMEOUT = "30"

SHARED: dict[str, str] = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
    "AIRFLOW__CORE__PARALLELISM": "32",
    "AIRFLOW__CORE__AUTH_MANAGER": (
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    ),
    "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "kubernaut.stack.celery_config.CELERY_CONFIG",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "8",
    "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
    "AIRFLOW__CELERY__TASK_ACKS_LATE": "True",
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "1800",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "10",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "3",
    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": EXECUTION_API_TIMEOUT,
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
}

# Set by both, with values of their own: where things are, and the installation's secrets.
PER_INSTALLATION: frozenset[str] = frozenset(
    {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__API__BASE_URL",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__PLUGINS_FOLDER",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW_CONN_KUBERNAUT_HISTORY",
        "AIRFLOW_CONN_KUBERNETES_DEFAULT",
        "KUBERNAUT_TEMPLATES_DIR",
        "KUBERNAUT_WEBHOOK_TOKEN_FILE",
        "KUBERNAUT_AIRFLOW_USERNAME",
        "KUBERNAUT_AIRFLOW_PASSWORD",
    }
)


# Set by the compose file only: Airflow's connections to the Prometheus and Alertmanager it runs
# (monitoring steps, the check that the alert still fires before a first change, the
# effectiveness assessment). ``kubernaut stack`` runs no Prometheus, and runs started on it
# through the REST API carry alerts its Alertmanager never saw (the check would call them
# resolved): there they stay the installation's to define (README, "Production shape").
COMPOSE_ONLY: frozenset[str] = frozenset(
    {"AIRFLOW_CONN_PROMETHEUS_DEFAULT", "AIRFLOW_CONN_ALERTMANAGER_DEFAULT"}
)


def sqlalchemy_url(postgres_uri: str) -> str:
    """``postgresql://...`` as Airflow's metadata connection (psycopg2 driver)."""
    return postgres_uri.replace("postgresql://", "postgresql+psycopg2://", 1)


def celery_settings(redis_url: str, metadata_uri: str) -> dict[str, str]:
    """Broker and result backend: Redis for messages, the metadata database for results."""
    return {
        "AIRFLOW__CELERY__BROKER_URL": redis_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata_uri}",
    }
