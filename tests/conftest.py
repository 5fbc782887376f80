"""Test-wide environment. Airflow reads its configuration at import time, so every
Airflow setting is made here, before any test module imports Airflow."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from kubernaut.sandbox import SandboxCluster

REPO = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="kubernaut-test-airflow-"))
PG_SERVER = os.environ.get("KUBERNAUT_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
PG_DATABASE = f"kubernaut_test_{os.getpid()}_{secrets.token_hex(3)}"

os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"{PG_SERVER}/{PG_DATABASE}"
os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = secrets.token_urlsafe(64)
os.environ["AIRFLOW__API__SECRET_KEY"] = secrets.token_urlsafe(64)
os.environ["KUBERNAUT_TEMPLATES_DIR"] = str(REPO / "templates")
# The remediation history (undo journal) lives in its own database.
HISTORY_DATABASE = f"{PG_DATABASE}_history"
os.environ["AIRFLOW_CONN_KUBERNAUT_HISTORY"] = f"postgresql://postgres@127.0.0.1:5432/{HISTORY_DATABASE}"


def admin_sql(statement: str) -> None:
    """Run one statement on the server's maintenance database (CREATE/DROP DATABASE)."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


@contextlib.contextmanager
def connected_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> Iterator[SandboxCluster]:
    """A seeded sandbox cluster over HTTP, reached the production way: KubernetesHook via
    the kubernetes_default connection (an env var naming the generated kubeconfig)."""
    from kubernaut.local_stack import kubernetes_connection
    from kubernaut.sandbox import SandboxCluster

    with SandboxCluster(**options) as sandbox:
        kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", kubernetes_connection(kubeconfig))
        sandbox.seed_demo()
        yield sandbox
