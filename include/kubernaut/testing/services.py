"""Real Prometheus, Alertmanager and Pushgateway as plain local processes, for tests.

Binaries come from the Debian packages ``prometheus``, ``prometheus-alertmanager`` and
``prometheus-pushgateway`` (or upstream builds on PATH; override with the environment
variables ``KUBERNAUT_PROMETHEUS_BIN`` etc.). Each process listens on a free 127.0.0.1
port with its own temporary configuration and storage.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

APT_PACKAGES = ("prometheus", "prometheus-alertmanager", "prometheus-pushgateway")
INSTALL_HINT = "apt-get install -y --no-install-recommends " + " ".join(APT_PACKAGES)
_BINARIES = {
    "prometheus": ("KUBERNAUT_PROMETHEUS_BIN", ("prometheus",)),
    "alertmanager": ("KUBERNAUT_ALERTMANAGER_BIN", ("prometheus-alertmanager", "alertmanager")),
    "pushgateway": ("KUBERNAUT_PUSHGATEWAY_BIN", ("prometheus-pushgateway", "pushgateway")),
}


class ServiceStartError(RuntimeError):
    pass


def find_binary(service: str) -> str:
    """The executable for ``service``, or an error naming the apt packages to install."""
    env, names = _BINARIES[service]
    override = os.environ.get(env)
    if override:
        return override
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise ServiceStartError(
        f"{service} binary not found (looked for {', '.join(names)} on PATH and ${env}); "
        f"install the Debian packages: {INSTALL_HINT}"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceStartError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise ServiceStartError(
            f"{self.name} not ready at {self.url} within {timeout:.0f}s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start(name: str, argv_for_port: Any, workdir: Path, timeout: float) -> ServiceProcess:
    """Start on a free port; retry on a port race with another process."""
    last: Exception | None = None
    for _ in range(3):
        port = free_port()
        log_path = workdir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv_for_port(port),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
            )
        service = ServiceProcess(name, f"http://127.0.0.1:{port}", process, workdir, log_path)
        try:
            service.wait_ready(timeout)
            return service
        except ServiceStartError as exc:
            service.stop()
            last = exc
            if "address already in use" not in str(exc):
                raise
    raise ServiceStartError(str(last))


def start_pushgateway(workdir: Path, *, timeout: float = 30.0) -> ServiceProcess:
    binary = find_binary("pushgateway")
    workdir.mkdir(parents=True, exist_ok=True)
    return _start(
        "pushgateway", lambda port: [binary, f"--web.listen-address=127.0.0.1:{port}"], workdir, timeout
    )


def start_prometheus(
    workdir: Path,
    *,
    scrape_targets: Sequence[str] = (),
    scrape_interval: str = "1s",
    timeout: float = 30.0,
    job_name: str = "pushgateway",
    honor_labels: bool = True,
    rules: str | None = None,
    alertmanager: str | None = None,
) -> ServiceProcess:
    """Prometheus scraping ``scrape_targets`` (host:port; ``honor_labels`` as for a
    Pushgateway), evaluating alerting ``rules`` (a rule file's YAML) and sending their alerts to
    ``alertmanager`` (its URL), re-sent every second so a test sees them promptly."""
    binary = find_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    targets = ", ".join(f'"{t.removeprefix("http://")}"' for t in scrape_targets)
    text = f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n"
    if rules is not None:
        (workdir / "rules.yml").write_text(rules)
        text += f"rule_files: [{workdir / 'rules.yml'}]\n"
    if alertmanager is not None:
        text += (
            "alerting:\n  alertmanagers:\n    - static_configs:\n"
            f"        - targets: ['{alertmanager.removeprefix('http://')}']\n"
        )
    text += f"scrape_configs:\n  - job_name: {job_name}\n"
    text += "    honor_labels: true\n" if honor_labels else ""
    text += f"    static_configs:\n      - targets: [{targets}]\n"
    config = workdir / "prometheus.yml"
    config.write_text(text)
    argv = [
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        "--storage.tsdb.retention.time=1h",
        *(["--rules.alert.resend-delay=1s"] if rules is not None else []),
    ]
    return _start(
        "prometheus", lambda port: [binary, *argv, f"--web.listen-address=127.0.0.1:{port}"], workdir, timeout
    )


def start_alertmanager(workdir: Path, *, timeout: float = 30.0) -> ServiceProcess:
    binary = find_binary("alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alertmanager.yml"
    config.write_text('route:\n  receiver: "null"\n  group_wait: 1s\nreceivers:\n  - name: "null"\n')
    return _start(
        "alertmanager",
        lambda port: [
            binary,
            f"--config.file={config}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip: a single, isolated instance
        ],
        workdir,
        timeout,
    )


@dataclass
class MonitoringStack:
    pushgateway: ServiceProcess
    prometheus: ServiceProcess
    alertmanager: ServiceProcess
    processes: list[ServiceProcess] = field(default_factory=list)

    def connection_env(
        self,
        prometheus_conn_id: str = "prometheus_default",
        alertmanager_conn_id: str = "alertmanager_default",
    ) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` variables pointing the Airflow connections at this stack."""
        return {
            connection_env_name(prometheus_conn_id): self.prometheus.url,
            connection_env_name(alertmanager_conn_id): self.alertmanager.url,
        }

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def connection_env_name(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


@contextmanager
def monitoring_stack(
    workdir: Path | None = None, *, scrape_interval: str = "1s"
) -> Iterator[MonitoringStack]:
    """Pushgateway, Prometheus scraping it, and Alertmanager; all stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="kubernaut-monitoring-") as tmp:
        base = workdir or Path(tmp)
        started: list[ServiceProcess] = []
        try:
            push = start_pushgateway(base / "pushgateway")
            started.append(push)
            prom = start_prometheus(
                base / "prometheus",
                scrape_targets=[push.url.removeprefix("http://")],
                scrape_interval=scrape_interval,
            )
            started.append(prom)
            am = start_alertmanager(base / "alertmanager")
            started.append(am)
            stack = MonitoringStack(push, prom, am, started)
            yield stack
        finally:
            for process in reversed(started):
                process.stop()


def push_metrics(
    pushgateway_url: str,
    job: str,
    metrics: Mapping[str, float] | str,
    *,
    grouping: Mapping[str, str] | None = None,
) -> None:
    """Replace the group's metrics (``PUT``): a mapping of name -> value (gauges), or exposition text."""
    if isinstance(metrics, str):
        body = metrics if metrics.endswith("\n") else metrics + "\n"
    else:
        body = "".join(f"# TYPE {name} gauge\n{name} {value}\n" for name, value in metrics.items())
    response = httpx.put(_group_url(pushgateway_url, job, grouping), content=body.encode(), timeout=5.0)
    response.raise_for_status()


def delete_metrics(pushgateway_url: str, job: str, *, grouping: Mapping[str, str] | None = None) -> None:
    httpx.delete(_group_url(pushgateway_url, job, grouping), timeout=5.0).raise_for_status()


def _group_url(base: str, job: str, grouping: Mapping[str, str] | None) -> str:
    path = f"/metrics/job/{job}" + "".join(f"/{k}/{v}" for k, v in (grouping or {}).items())
    return base.rstrip("/") + path


def wait_for_query(
    prometheus_url: str, query: str, *, timeout: float = 15.0, empty: bool = False
) -> list[Any]:
    """Wait until ``query`` returns samples (or none, with ``empty``): i.e. a scrape happened."""
    deadline = time.monotonic() + timeout
    result: list[Any] = []
    while time.monotonic() < deadline:
        response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": query}, timeout=5.0)
        response.raise_for_status()
        result = response.json()["data"]["result"]
        if bool(result) != empty:
            return result
        time.sleep(0.2)
    raise TimeoutError(f"query {query!r} still {'non-empty' if empty else 'empty'} after {timeout:.0f}s")


def post_alerts(alertmanager_url: str, alerts: Sequence[Mapping[str, Any]]) -> None:
    httpx.post(f"{alertmanager_url}/api/v2/alerts", json=list(alerts), timeout=5.0).raise_for_status()


def fire_alert(
    alertmanager_url: str,
    labels: Mapping[str, str],
    *,
    annotations: Mapping[str, str] | None = None,
    duration: float = 600.0,
) -> None:
    """Post a firing alert (``labels`` must include ``alertname``) ending in ``duration`` seconds."""
    now = dt.datetime.now(dt.UTC)
    post_alerts(
        alertmanager_url,
        [
            {
                "labels": dict(labels),
                "annotations": dict(annotations or {}),
                "startsAt": now.isoformat(),
                "endsAt": (now + dt.timedelta(seconds=duration)).isoformat(),
            }
        ],
    )


def resolve_alert(alertmanager_url: str, labels: Mapping[str, str]) -> None:
    """Resolve an alert the way Prometheus does: post it again with ``endsAt`` now."""
    now = dt.datetime.now(dt.UTC)
    post_alerts(
        alertmanager_url,
        [
            {
                "labels": dict(labels),
                "startsAt": (now - dt.timedelta(minutes=1)).isoformat(),
                "endsAt": now.isoformat(),
            }
        ],
    )
