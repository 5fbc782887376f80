"""The production shape on one machine: PostgreSQL (metadata + remediation history), Redis
(Celery broker), api-server, scheduler, dag-processor, triggerer and N Celery workers as
separate processes, the alert intake plugin in the api-server, a real Alertmanager posting to
it, and (unless a kubeconfig is given) the sandbox cluster.

Every component gets :data:`kubernaut.stack.settings.SHARED`, the settings
``docker-compose.yaml`` uses, plus where things are on this machine.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kubernaut.live_stack import PG_SERVER, Alertmanager, _admin_connection, create_database, drop_database
from kubernaut.local_stack import (
    AirflowStandalone,
    SandboxProcess,
    free_port,
    kubernetes_connection,
    write_private,
)
from kubernaut.stack.processes import Component
from kubernaut.stack.settings import SHARED, celery_settings, sqlalchemy_url

REPO = Path(__file__).resolve().parents[3]
REDIS = "redis://127.0.0.1:6379"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def ensure_database(name: str) -> str:
    """Create the database unless it exists; its URI."""
    conn = _admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return f"{PG_SERVER}/{name}"


@dataclass
class Stack:
    workdir: Path
    workers: int = 2
    concurrency: int = int(SHARED["AIRFLOW__CELERY__WORKER_CONCURRENCY"])
    redis_db: int = 0
    # Databases <name> and <name>_history; a fresh stack drops them on stop.
    name: str = field(default_factory=lambda: f"kn_stack_{secrets.token_hex(4)}")
    fresh: bool = True
    templates_dir: Path = REPO / "templates"
    dags_folder: Path = REPO / "dags"
    # Last word on the environment (e.g. the benches' LocalExecutor comparison).
    env_extra: dict[str, str] = field(default_factory=dict)
    kubeconfig: Path | None = None  # None: the sandbox cluster
    pod_ready_delay: float | None = None
    port: int = 0
    airflow: AirflowStandalone | None = None
    sandbox: SandboxProcess | None = None
    alertmanager: Alertmanager | None = None
    components: dict[str, Component] = field(default_factory=dict)
    token: str = ""
    databases: list[str] = field(default_factory=list)

    # -- where things are -----------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/kubernaut/alerts"

    @property
    def metadata_uri(self) -> str:
        return f"{PG_SERVER}/{self.name}"

    @property
    def history_uri(self) -> str:
        return f"{PG_SERVER}/{self.name}_history"

    @property
    def redis_url(self) -> str:
        return f"{REDIS}/{self.redis_db}"

    @property
    def worker_names(self) -> list[str]:
        return sorted(n for n in self.components if n.startswith("worker-"))

    def environment(self) -> dict[str, str]:
        """What every component runs with: SHARED plus this machine's places and secrets."""
        assert self.airflow is not None
        env = self.airflow.environment()
        env.update(SHARED)
        env.update(celery_settings(self.redis_url, sqlalchemy_url(self.metadata_uri)))
        kubeconfig = self.kubeconfig or (self.sandbox.kubeconfig if self.sandbox else None)
        env.update(
            {
                # Celery's keys in Redis carry the stack's name: stacks sharing a DB never mix.
                "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": f"{self.name}:",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
                "AIRFLOW_CONN_KUBERNAUT_HISTORY": self.history_uri,
                "KUBERNAUT_WEBHOOK_TOKEN_FILE": str(self.token_file),
                "KUBERNAUT_AIRFLOW_USERNAME": self.airflow.username,
                "KUBERNAUT_AIRFLOW_PASSWORD": self.airflow.password,
            }
        )
        if kubeconfig is not None:
            env["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = kubernetes_connection(kubeconfig)
        env.update(self.env_extra)
        return env

    @property
    def token_file(self) -> Path:
        return self.workdir / "webhook-token"

    # -- components -----------------------------------------------------------------------
    def _component(self, name: str, argv: list[str], ready: Any = None, **env: str) -> Component:
        component = Component(
            name, argv, {**self.environment(), **env}, self.workdir / "logs" / f"{name}.log", ready
        )
        self.components[name] = component
        return component

    def _api_ready(self) -> bool:
        return httpx.get(f"{self.url}/api/v2/monitor/health", timeout=2).status_code == 200

    def scheduler(self) -> Component:
        """A new scheduler process (not started), replacing any earlier one in ``components``."""
        port = free_port()
        return self._component(
            "scheduler",
            [AIRFLOW, "scheduler"],
            lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200,
            AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT=str(port),
        )

    def worker(self, index: int) -> Component:
        """Celery worker ``index`` (not started): its own node name and log server port."""
        name = f"worker-{index}"
        return self._component(
            name,
            [AIRFLOW, "celery", "worker", "--celery-hostname", f"{name}@{self.name}", "--without-gossip"],
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        )

    def prepare(self) -> AirflowStandalone:
        """Airflow's home, login and secrets, and the webhook token (nothing started)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.airflow = AirflowStandalone(
            home=self.workdir / "airflow",
            dags_folder=self.dags_folder,
            templates_dir=self.templates_dir,
            sql_alchemy_conn=sqlalchemy_url(self.metadata_uri),
            executor=SHARED["AIRFLOW__CORE__EXECUTOR"],
            plugins_folder=REPO / "plugins",
        )
        self.port = self.port or free_port()
        self.airflow.port = self.port
        self.token = self.airflow.secret("webhook_token")
        write_private(self.token_file, self.token)
        return self.airflow

    def start(self, timeout: float = 300.0) -> Stack:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        from kubernaut.demo import migrate_history_at

        self.workdir.mkdir(parents=True, exist_ok=True)
        for database in (self.name, f"{self.name}_history"):
            (create_database if self.fresh else ensure_database)(database)
            self.databases.append(database)
        migrate_history_at(self.history_uri)
        self.prepare()
        if self.kubeconfig is None:
            self.sandbox = SandboxProcess(
                self.workdir / "sandbox", pod_ready_delay=self.pod_ready_delay, new_session=True
            ).start()
        with open(self.workdir / "airflow-db-migrate.log", "wb") as log:
            subprocess.run(
                [AIRFLOW, "db", "migrate"],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
            )
        api = self._component(
            "api-server",
            [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
            self._api_ready,
        )
        scheduler = self.scheduler()
        processor = self._component("dag-processor", [AIRFLOW, "dag-processor"])
        triggerer = self._component(
            "triggerer",
            [AIRFLOW, "triggerer"],
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        )
        workers = [self.worker(i + 1) for i in range(self.workers)]
        for component in (api, scheduler, processor, triggerer, *workers):
            component.start()
        api.wait_ready(timeout)
        scheduler.wait_ready(timeout)
        self.alertmanager = Alertmanager(
            self.workdir / "alertmanager", self.webhook_url, token_file=self.token_file
        ).start()

    def client(self) -> httpx.Client:
        assert self.airflow is not None
        return self.airflow.client()

    def describe(self) -> dict[str, Any]:
        assert self.airflow is not None
        return {
            "ui": self.url,
            "login": f"{self.airflow.username} / {self.airflow.password}",
            "webhook": self.webhook_url,
            "webhook_token_file": str(self.token_file),
            "alertmanager": self.alertmanager.url if self.alertmanager else None,
            "sandbox": self.sandbox.url if self.sandbox else None,
            "metadata_db": self.metadata_uri,
            "history_db": self.history_uri,
            "broker": f"{self.redis_url} (keys {self.name}:*)",
            "processes": {name: c.pid for name, c in self.components.items() if c.running()},
            "logs": str(self.workdir / "logs"),
        }

    def stop(self) -> None:
        """Workers first (SIGTERM: Celery's warm shutdown), then Alertmanager, the triggerer,
        scheduler, dag-processor and api-server; each waited for before the next."""
        order = [*self.worker_names, "alertmanager", "triggerer", "scheduler", "dag-processor", "api-server"]
        for name in order:
            try:
                if name == "alertmanager":
                    if self.alertmanager is not None:
                        self.alertmanager.stop()
                elif name in self.components:
                    self.components[name].stop()
            except Exception as exc:  # keep stopping the rest
                print(f"stack: stopping {name} failed: {exc}", file=sys.stderr)
        if self.sandbox is not None:
            self.sandbox.stop()
        if self.fresh:
            for database in reversed(self.databases):
                try:
                    drop_database(database)
                except Exception as exc:
                    print(f"stack: dropping database {database} failed: {exc}", file=sys.stderr)
            self._forget_broker_keys()

    def _forget_broker_keys(self) -> None:
        """Delete this stack's Celery keys from Redis (only its own prefix)."""
        import redis

        try:
            client = redis.Redis.from_url(self.redis_url)
            keys = list(client.scan_iter(match=f"{self.name}:*", count=500))
            if keys:
                client.delete(*keys)
        except redis.RedisError as exc:
            print(f"stack: cleaning Redis keys {self.name}:* failed: {exc}", file=sys.stderr)
