"""Start and stop the local stack: the sandbox cluster and ``airflow standalone``.

Used by the demo and by tests about the running system. ``airflow standalone`` must be
stopped children first (scheduler, dag-processor, triggerer, api-server), then the
parent, or its workers hang.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process_tree(proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """SIGTERM the children first, then the parent; SIGKILL whatever is left."""
    import psutil

    if proc.poll() is not None:
        return
    try:
        parent = psutil.Process(proc.pid)
        children = parent.children(recursive=False)
    except psutil.NoSuchProcess:
        return
    for child in children:
        try:
            child.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=timeout)
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        leftovers = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        leftovers = [c for c in children if c.is_running()]
    for p in leftovers:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@dataclass
class SandboxProcess:
    """The sandbox cluster as its own process (what the demo and the live stack use)."""

    workdir: Path
    seed: str = "demo"
    faults: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def start(self, timeout: float = 30.0) -> SandboxProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / "sandbox.url"
        ready.unlink(missing_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "kubernaut.sandbox",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--kubeconfig",
            str(self.kubeconfig),
            "--ready-file",
            str(ready),
        ]
        if self.seed:
            cmd += ["--seed", self.seed]
        for fault in self.faults:
            cmd += ["--fault", fault]
        log = open(self.workdir / "sandbox.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ready.exists() or not ready.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox cluster did not start; see {self.workdir / 'sandbox.log'}")
            time.sleep(0.1)
        self.url = ready.read_text().strip()
        return self

    def inject_fault(self, fault_type: str, namespace: str, deployment: str) -> None:
        body = {"type": fault_type, "namespace": namespace, "deployment": deployment}
        httpx.post(f"{self.url}/sandbox/faults", json=body, timeout=10).raise_for_status()

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_tree(self.proc)


def kubernetes_connection(kubeconfig: Path) -> str:
    return json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}})


@dataclass
class AirflowStandalone:
    """``airflow standalone`` (SQLite by default) with our DAGs, its own AIRFLOW_HOME and a known login.

    ``sql_alchemy_conn``/``executor`` select e.g. PostgreSQL + LocalExecutor; ``plugins_folder``
    loads plugins (the alert intake). Unset, Airflow's defaults apply as before.
    """

    home: Path
    dags_folder: Path
    templates_dir: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    port: int = 0
    username: str = "admin"
    password: str = ""
    proc: subprocess.Popen[bytes] | None = None
    sql_alchemy_conn: str | None = None
    executor: str | None = None
    plugins_folder: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        secrets_file = self.home / "kubernaut-secrets.json"
        if secrets_file.exists():
            stored = json.loads(secrets_file.read_text())
        else:
            stored = {
                "jwt": secrets.token_urlsafe(64),
                "api": secrets.token_urlsafe(64),
                "password": secrets.token_urlsafe(12),
            }
            secrets_file.write_text(json.dumps(stored))
        self.password = stored["password"]
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({self.username: self.password}))
        env = dict(os.environ)
        # standalone starts its components as `airflow ...` found on PATH: use this venv's.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__API_AUTH__JWT_SECRET": stored["jwt"],
                "AIRFLOW__API__SECRET_KEY": stored["api"],
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
                "KUBERNAUT_TEMPLATES_DIR": str(self.templates_dir),
            }
        )
        optional = {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.plugins_folder) if self.plugins_folder else None,
        }
        env.update({k: v for k, v in optional.items() if v})
        env.update(self.env_extra)
        return env

    def start(self, timeout: float = 240.0) -> AirflowStandalone:
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        env = self.environment()
        airflow = str(Path(sys.executable).with_name("airflow"))
        log = open(self.home / "standalone.log", "wb")
        self.proc = subprocess.Popen([airflow, "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"airflow standalone exited; see {self.home / 'standalone.log'}")
            try:
                if httpx.get(f"{self.url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"airflow api-server not up in {timeout:.0f}s; see {self.home}/standalone.log"
                )
            time.sleep(1)
        return self

    def client(self) -> httpx.Client:
        token = httpx.post(
            f"{self.url}/auth/token", json={"username": self.username, "password": self.password}, timeout=10
        )
        token.raise_for_status()
        return httpx.Client(
            base_url=f"{self.url}/api/v2",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=30,
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_tree(self.proc)
