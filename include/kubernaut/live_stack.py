"""The full local stack for end-to-end tests and benches: PostgreSQL databases, the sandbox
cluster, ``airflow standalone`` (LocalExecutor, PostgreSQL, the intake plugin) and a real
Alertmanager whose webhook points at the plugin.

Everything listens on loopback with its own state directory; ``LiveStack.stop`` stops
what it started, newest first, and drops the databases it created.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kubernaut.local_stack import AirflowStandalone, SandboxProcess, free_port, kubernetes_connection

REPO = Path(__file__).resolve().parents[2]
PG_SERVER = os.environ.get("KUBERNAUT_TEST_PG_URI", "postgresql://postgres@127.0.0.1:5432")
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")


def _admin_connection() -> Any:
    import psycopg2

    conn = psycopg2.connect(f"{PG_SERVER}/postgres")
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    return conn


def create_database(name: str) -> str:
    conn = _admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return f"{PG_SERVER}/{name}"


def drop_database(name: str) -> None:
    conn = _admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


def alertmanager_binary() -> str:
    for name in ALERTMANAGER_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("Alertmanager not found: apt-get install -y prometheus-alertmanager")


@dataclass
class Alertmanager:
    """A single Alertmanager (no cluster) with one webhook receiver and short timers."""

    workdir: Path
    webhook_url: str
    token_file: Path | None = None
    group_wait: str = "1s"
    group_interval: str = "5s"
    repeat_interval: str = "10s"
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        http_config = ""
        if self.token_file is not None:
            http_config = (
                "\n        http_config:\n          authorization:\n            type: Bearer\n"
                f"            credentials_file: {self.token_file}"
            )
        return f"""route:
  receiver: kubernaut
  group_by: ['...']
  group_wait: {self.group_wait}
  group_interval: {self.group_interval}
  repeat_interval: {self.repeat_interval}
receivers:
  - name: kubernaut
    webhook_configs:
      - url: {self.webhook_url}
        send_resolved: true{http_config}
"""

    def start(self, timeout: float = 30.0) -> Alertmanager:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        (self.workdir / "alertmanager.yml").write_text(self.config())
        cmd = [
            alertmanager_binary(),
            f"--config.file={self.workdir / 'alertmanager.yml'}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
        ]
        log = open(self.workdir / "alertmanager.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited; see {self.workdir / 'alertmanager.log'}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"alertmanager not ready in {timeout:.0f}s")
            time.sleep(0.2)

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10).raise_for_status()

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=10)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class LiveStack:
    workdir: Path
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    sandbox: SandboxProcess | None = None
    airflow: AirflowStandalone | None = None
    alertmanager: Alertmanager | None = None
    databases: list[str] = field(default_factory=list)

    @property
    def webhook_url(self) -> str:
        assert self.airflow is not None
        return f"{self.airflow.url}/kubernaut/alerts"

    def start(self) -> LiveStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        suffix = secrets.token_hex(4)
        metadata, history = f"kn_airflow_{suffix}", f"kn_history_{suffix}"
        metadata_uri = create_database(metadata)
        self.databases.append(metadata)
        history_uri = create_database(history)
        self.databases.append(history)
        from kubernaut.history import History

        History(connect=lambda: _connect(history_uri)).migrate()

        self.sandbox = SandboxProcess(self.workdir / "sandbox").start()
        token_file = self.workdir / "webhook-token"
        self.workdir.mkdir(parents=True, exist_ok=True)
        token_file.write_text(self.token)
        token_file.chmod(0o600)
        self.airflow = AirflowStandalone(
            home=self.workdir / "airflow",
            dags_folder=REPO / "dags",
            templates_dir=REPO / "templates",
            sql_alchemy_conn=metadata_uri.replace("postgresql://", "postgresql+psycopg2://", 1),
            executor="LocalExecutor",
            plugins_folder=REPO / "plugins",
        )
        self.airflow.home.mkdir(parents=True, exist_ok=True)
        self.airflow.port = free_port()
        self.airflow.environment()  # creates the login, so the intake can be given it below
        self.airflow.env_extra = {
            "AIRFLOW_CONN_KUBERNETES_DEFAULT": kubernetes_connection(self.sandbox.kubeconfig),
            "AIRFLOW_CONN_KUBERNAUT_HISTORY": history_uri.replace("postgresql://", "postgres://", 1),
            "KUBERNAUT_WEBHOOK_TOKEN_FILE": str(token_file),
            "KUBERNAUT_AIRFLOW_USERNAME": self.airflow.username,
            "KUBERNAUT_AIRFLOW_PASSWORD": self.airflow.password,
        }
        self.airflow.start()
        self.alertmanager = Alertmanager(
            self.workdir / "alertmanager", self.webhook_url, token_file=token_file
        ).start()

    def history_uri(self) -> str:
        return f"{PG_SERVER}/{self.databases[1]}"

    def stop(self) -> None:
        for part in (self.alertmanager, self.airflow, self.sandbox):
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:  # keep stopping the rest
                    print(f"live stack: stopping {type(part).__name__} failed: {exc}")
        for name in reversed(self.databases):
            try:
                drop_database(name)
            except Exception as exc:
                print(f"live stack: dropping database {name} failed: {exc}")


def _connect(uri: str) -> Any:
    import psycopg2

    return psycopg2.connect(uri)


def am_alert(labels: dict[str, str], starts_at: str, summary: str = "") -> dict[str, Any]:
    """An alert as Prometheus posts it to Alertmanager's API."""
    annotations = {"summary": summary or json.dumps(labels)}
    return {"labels": labels, "annotations": annotations, "startsAt": starts_at}
