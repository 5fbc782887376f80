"""Airflow with its metadata DB on the real PostgreSQL (a database per test session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubernaut.history import History
from kubernaut.sandbox import SandboxCluster
from tests.conftest import HISTORY_DATABASE, PG_DATABASE, REPO, admin_sql, connected_sandbox


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[str]:
    admin_sql(f'CREATE DATABASE "{PG_DATABASE}"')
    admin_sql(f'CREATE DATABASE "{HISTORY_DATABASE}"')
    from airflow.utils.db import initdb

    initdb()
    History().migrate()
    yield PG_DATABASE
    from airflow import settings

    settings.dispose_orm()
    admin_sql(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
    admin_sql(f'DROP DATABASE IF EXISTS "{HISTORY_DATABASE}" WITH (FORCE)')


@pytest.fixture(scope="session")
def dagbag(airflow_db: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxCluster]:
    """A fresh sandbox cluster per test, reached by Airflow's kubernetes_default connection."""
    with connected_sandbox(tmp_path, monkeypatch, pod_ready_delay=0.2) as sandbox:
        yield sandbox
