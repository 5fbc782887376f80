"""A stack started inside a test process migrates its history without pointing that process
at it (the next test's runs would journal into the stack's database, or fail once it is gone)."""

from __future__ import annotations

import os
import secrets

import pytest

from kubernaut.demo import migrate_history_at
from kubernaut.live_stack import create_database, drop_database


def test_migrating_a_history_leaves_the_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg2

    monkeypatch.setenv("AIRFLOW_CONN_KUBERNAUT_HISTORY", "postgresql://postgres@127.0.0.1:5432/ours")
    name = f"kn_migrate_{secrets.token_hex(4)}"
    url = create_database(name)
    try:
        migrate_history_at(url)
        assert os.environ["AIRFLOW_CONN_KUBERNAUT_HISTORY"].endswith("/ours")
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass('kubernaut_runs') IS NOT NULL")
            assert cur.fetchone() == (True,)  # and the stack's database was migrated
        conn.close()
    finally:
        drop_database(name)
