from kubernaut.testing.pytest_plugin import (  # noqa: F401
    action_context,
    airflow_connection,
    kubernaut_config,
    undo_journal,
    webhook_server,
)
