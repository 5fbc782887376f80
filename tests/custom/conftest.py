from collections.abc import Iterator

import psycopg2
import pytest

from kubernaut.history import History
from kubernaut.testing.pytest_plugin import (  # noqa: F401
    action_context,
    airflow_connection,
    kubernaut_config,
    kubernaut_sandbox,
    kubernaut_sandbox_options,
    undo_journal,
    webhook_server,
)
from tests.conftest import PG_DATABASE, admin_sql

# A history database of their own: the dagruns fixtures create (and drop) the shared one.
CUSTOM_HISTORY_DATABASE = f"{PG_DATABASE}_custom"


@pytest.fixture(scope="session")
def history_database() -> Iterator[str]:
    admin_sql(f'CREATE DATABASE "{CUSTOM_HISTORY_DATABASE}"')
    History(connect=lambda: _connect(CUSTOM_HISTORY_DATABASE)).migrate()
    yield CUSTOM_HISTORY_DATABASE
    admin_sql(f'DROP DATABASE IF EXISTS "{CUSTOM_HISTORY_DATABASE}" WITH (FORCE)')


def _connect(database: str) -> object:
    return psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=database)


@pytest.fixture
def history(history_database: str) -> Iterator[History]:
    """The real history store (undo journal) on PostgreSQL."""
    store = History("kubernaut_custom_test", connect=lambda: _connect(history_database))
    yield store
    store.close()
