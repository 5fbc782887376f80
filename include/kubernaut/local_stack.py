"""Start and stop the local stack: the sandbox cluster and ``airflow standalone``.

Used by the demo and by tests about the running system. ``airflow standalone`` must be
stopped children first (scheduler, dag-processor, triggerer, api-server), then the
parent, or its workers hang.
"""

from __future__ import annotations

import base64
import hashlib
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

from kubernaut.stack.settings import EXECUTION_API_TIMEOUT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: created 0600, never briefly world-readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as out:
        out.write(text)


def machine_parallelism() -> int:
    """Task slots for a local Airflow: 2 per core, at least 4.

    LocalExecutor forks ``parallelism`` workers up front; Airflow's default of 32 is meant for
    a big host, not a laptop or a 2-core CI machine.
    """
    return max(4, 2 * (os.cpu_count() or 1))


def _alive(process: Any) -> bool:
    import psutil

    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _signal_all(processes: list[Any], signum: int) -> None:
    import psutil

    for process in processes:
        try:
            process.send_signal(signum)
        except psutil.NoSuchProcess:
            pass


def stop_process_tree(proc: subprocess.Popen[Any], timeout: float = 15.0, grace: float = 5.0) -> None:
    """Stop ``proc`` and every process it started; return once none of them is left.

    Children first (SIGTERM), then the parent: ``airflow standalone`` must outlive its
    components (scheduler, dag-processor, triggerer, api-server) or they are orphaned. Their
    own children (LocalExecutor workers, serve-logs, task supervisors) are tracked by pid
    from the start, so they are found even once reparented to init. Whatever is left after
    ``timeout`` (a LocalExecutor worker that ran a task may never leave, and its scheduler
    waits for it) gets SIGTERM again, the scheduler's "do not wait" signal, then SIGKILL.
    """
    import psutil

    if proc.poll() is not None:
        return
    try:
        root = psutil.Process(proc.pid)
    except psutil.NoSuchProcess:
        return
    tracked: dict[int, Any] = {root.pid: root}

    def alive() -> list[Any]:
        for process in list(tracked.values()):
            try:
                for child in process.children(recursive=True):
                    tracked.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                pass
        return [p for p in tracked.values() if _alive(p)]

    def wait_until_gone(which: Any, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while which() and time.monotonic() < deadline:
            time.sleep(0.1)

    alive()  # the whole tree, before anything can be orphaned
    _signal_all(root.children(), signal.SIGTERM)
    wait_until_gone(lambda: [p for p in alive() if p.pid != root.pid], timeout)
    _signal_all([root], signal.SIGTERM)
    wait_until_gone(alive, grace)
    _signal_all(alive(), signal.SIGTERM)
    wait_until_gone(alive, grace)
    leftovers = alive()
    _signal_all(leftovers, signal.SIGKILL)
    psutil.wait_procs(leftovers, timeout=grace)
    try:
        proc.wait(timeout=grace)  # reap it: no zombie left behind
    except subprocess.TimeoutExpired:
        pass


@dataclass
class SandboxProcess:
    """The sandbox cluster as its own process (what the demo and the live stack use)."""

    workdir: Path
    seed: str = "demo"
    faults: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    # Own session: a terminal's Ctrl-C or hang-up reaches only its owner, which stops it.
    new_session: bool = False
    # Seconds until a new pod is Ready (the sandbox's default when None): longer rollouts.
    pod_ready_delay: float | None = None

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
        if self.pod_ready_delay is not None:
            cmd += ["--pod-ready-delay", str(self.pod_ready_delay)]
        log = open(self.workdir / "sandbox.log", "wb")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=self.new_session
        )
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


def fernet_key(secret: str) -> str:
    """A valid Fernet key (32 url-safe base64 bytes) derived from a stored random secret."""
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()).decode()


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
    parallelism: int = field(default_factory=machine_parallelism)
    # Own session: a terminal's Ctrl-C or hang-up reaches only its owner, which stops it.
    new_session: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def secrets_file(self) -> Path:
        """The login password, API keys and tokens of this installation (mode 0600)."""
        return self.home / "kubernaut-secrets.json"

    def secret(self, name: str, nbytes: int = 32) -> str:
        """The stored secret ``name``; created (random) and saved on first use."""
        self.home.mkdir(parents=True, exist_ok=True)
        stored: dict[str, str] = {}
        if self.secrets_file.exists():
            stored = json.loads(self.secrets_file.read_text())
        if name not in stored:
            stored[name] = secrets.token_urlsafe(nbytes)
            write_private(self.secrets_file, json.dumps(stored))
        else:
            os.chmod(self.secrets_file, 0o600)  # a file from an older demo may be 0644
        return stored[name]

    def environment(self) -> dict[str, str]:
        jwt_secret, api_secret = self.secret("jwt", 64), self.secret("api", 64)
        self.password = self.secret("password", 12)
        passwords = self.home / "passwords.json"
        write_private(passwords, json.dumps({self.username: self.password}))
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
                "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
                "AIRFLOW__API__SECRET_KEY": api_secret,
                # Sealed undo records of secret-changing steps need a Fernet key.
                "AIRFLOW__CORE__FERNET_KEY": fernet_key(self.secret("fernet", 32)),
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": EXECUTION_API_TIMEOUT,
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
        self.proc = subprocess.Popen(
            [airflow, "standalone"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=self.new_session,
        )
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
