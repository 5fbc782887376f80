"""The full local stack for end-to-end tests and benches: PostgreSQL databases, the sandbox
cluster, ``airflow standalone`` (LocalExecutor, PostgreSQL, the intake plugin) and a real
Alertmanager whose webhook points at the plugin.

Everything listens on loopback with its own state directory; ``LiveStack.stop`` stops
what it started, newest first, and drops the databases it created.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import os
import secrets
import shutil
import subprocess
import threading
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
    templates_dir: Path = REPO / "templates"

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
            templates_dir=self.templates_dir,
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


# -- alert storm (bench/storm.py, tests/intake/test_storm.py) ------------------------------------
STORM_DAG = "kubernaut_pod_diagnostics"  # read-only template: a storm changes nothing in the cluster
STORM_ALERT = "PodNotHealthy"  # only pod-diagnostics (read-only) answers it: the storm changes nothing


class Samples(list[float]):
    """Latencies in milliseconds."""

    def pct(self, q: float) -> float:
        ordered = sorted(self)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] if ordered else 0.0

    @property
    def p50(self) -> float:
        return self.pct(0.50)

    @property
    def p99(self) -> float:
        return self.pct(0.99)

    @property
    def max(self) -> float:
        return max(self, default=0.0)


@dataclass
class StormReport:
    distinct_latency: Samples = field(default_factory=Samples)
    distinct_status: list[int] = field(default_factory=list)
    distinct_decisions: dict[str, int] = field(default_factory=dict)
    identical_latency: Samples = field(default_factory=Samples)
    identical_status: list[int] = field(default_factory=list)
    identical_decisions: dict[str, int] = field(default_factory=dict)
    first_post: Samples = field(default_factory=Samples)
    quiet_healthz: Samples = field(default_factory=Samples)
    quiet_health: Samples = field(default_factory=Samples)
    storm_healthz: Samples = field(default_factory=Samples)
    storm_health: Samples = field(default_factory=Samples)
    storm_runs: int = 0
    identical_runs: int = 0
    triggered_rows: int = 0
    runs_without_decision: list[str] = field(default_factory=list)
    bystander_state: str = ""
    warmup_state: str = ""
    answers: list[dict[str, Any]] = field(default_factory=list)

    def latency_rows(self) -> list[tuple[str, Samples]]:
        return [
            ("first POST /kubernaut/alerts after start (resolved alert)", self.first_post),
            ("quiet: GET /kubernaut/healthz (plugin, same server)", self.quiet_healthz),
            ("quiet: GET /api/v2/monitor/health (Airflow)", self.quiet_health),
            ("storm: POST /kubernaut/alerts, distinct alerts, one pod", self.distinct_latency),
            ("storm: POST /kubernaut/alerts, one identical payload", self.identical_latency),
            ("during the storm: GET /kubernaut/healthz", self.storm_healthz),
            ("during the storm: GET /api/v2/monitor/health", self.storm_health),
        ]


def webhook_body(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """Alertmanager's webhook payload (version 4) around already complete alerts."""
    return {
        "version": "4",
        "receiver": "kubernaut",
        "status": "firing",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "alerts": alerts,
    }


def storm_alert(pod: str, fingerprint: str, starts_at: str, container: str = "app") -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": STORM_ALERT, "namespace": "demo", "pod": pod, "container": container},
        "annotations": {"summary": f"container {container} of {pod} waiting"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint,
    }


class _Sampler:
    """Polls the plugin's healthz and Airflow's health side by side while a phase runs."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url, self.timeout = base_url, timeout
        self.healthz, self.health = Samples(), Samples()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 5)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=self.timeout) as client:
            while not self._stop.is_set():
                for path, samples in (
                    ("/kubernaut/healthz", self.healthz),
                    ("/api/v2/monitor/health", self.health),
                ):
                    t0 = time.perf_counter()
                    try:
                        client.get(path)
                    except httpx.HTTPError:
                        pass  # a timeout is recorded as its duration
                    samples.append((time.perf_counter() - t0) * 1000)
                self._stop.wait(0.05)


async def _post_all(
    url: str, token: str, bodies: list[dict[str, Any]], concurrency: int, timeout: float
) -> list[tuple[int, dict[str, Any], float]]:
    """POST each body (``concurrency`` in flight at once); (status, answer, ms) in order."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers) as client:

        async def one(body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
            async with gate:
                t0 = time.perf_counter()
                try:
                    response = await client.post(url, json=body)
                except httpx.HTTPError as exc:
                    return 0, {"detail": repr(exc)}, (time.perf_counter() - t0) * 1000
                ms = (time.perf_counter() - t0) * 1000
                try:
                    answer = response.json()
                except ValueError:
                    answer = {"detail": response.text[:300]}
                return response.status_code, answer, ms

        return list(await asyncio.gather(*(one(b) for b in bodies)))


def _decisions(answers: list[tuple[int, dict[str, Any], float]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, answer, _ in answers:
        for d in answer.get("decisions", []):
            counts[d["decision"]] = counts.get(d["decision"], 0) + 1
    return counts


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def prepare_storm(stack: LiveStack) -> httpx.Client:
    """The storm's DAG parsed and unpaused; an API client for the checks."""
    from kubernaut.demo import wait

    assert stack.airflow is not None
    api = stack.airflow.client()
    wait(lambda: api.get(f"/dags/{STORM_DAG}").status_code == 200, 180, "DAGs to be parsed")
    api.patch(f"/dags/{STORM_DAG}", json={"is_paused": False}).raise_for_status()
    return api


def storm_runs_for(api: httpx.Client, pod: str) -> list[dict[str, Any]]:
    runs = api.get(f"/dags/{STORM_DAG}/dagRuns", params={"limit": 1000}).json()["dag_runs"]
    return [r for r in runs if (r.get("conf") or {}).get("alert", {}).get("labels", {}).get("pod") == pod]


def start_bystander(api: httpx.Client, pod: str, run_id: str) -> None:
    """An unrelated run (another pod) started right before the storm; waits until it runs."""
    from kubernaut.demo import wait

    alert = storm_alert(pod, f"bystander{secrets.token_hex(4)}", _now_iso())
    body = {"dag_run_id": run_id, "logical_date": None, "conf": {"alert": alert}}
    api.post(f"/dags/{STORM_DAG}/dagRuns", json=body).raise_for_status()
    wait(
        lambda: api.get(f"/dags/{STORM_DAG}/dagRuns/{run_id}").json()["state"] in ("running", "success"),
        120,
        "the unrelated run to start",
        interval=0.2,
    )


def finished_state(api: httpx.Client, run_id: str, timeout: float = 240) -> str:
    """The run's final state, or its state when ``timeout`` ran out."""
    deadline = time.monotonic() + timeout
    while True:
        state = str(api.get(f"/dags/{STORM_DAG}/dagRuns/{run_id}").json()["state"])
        if state in ("success", "failed") or time.monotonic() > deadline:
            return state
        time.sleep(1)


def run_storm(
    stack: LiveStack,
    *,
    distinct: int = 50,
    identical: int = 300,
    concurrency: int = 10,
    timeout: float = 600.0,
) -> StormReport:
    """N distinct alerts about one pod at once, then M posts of one new identical payload about
    another pod, while an unrelated run (a third pod) is running; see bench/storm.py."""
    import psycopg2

    assert stack.airflow is not None and stack.sandbox is not None
    api = prepare_storm(stack)
    pods = [p["metadata"]["name"] for p in stack.sandbox.get("/api/v1/namespaces/demo/pods")["items"]]
    storm_pod, identical_pod, bystander_pod = pods[0], pods[1], pods[2]
    tag = secrets.token_hex(3)
    report = StormReport()
    resolved = storm_alert(bystander_pod, f"{tag}first00000", _now_iso())
    first = asyncio.run(
        _post_all(
            stack.webhook_url, stack.token, [webhook_body([{**resolved, "status": "resolved"}])], 1, timeout
        )
    )
    report.first_post = Samples(ms for _, _, ms in first)
    # Airflow's execution API builds its versioned routes (Cadwyn) on its first request, in the
    # api-server's event loop: ~10 s here during which the whole server answers nothing. A
    # warm-up run takes that one-off out of the figures; it is Airflow's, not the intake's.
    warmup = f"warmup-{tag}"
    start_bystander(api, bystander_pod, warmup)
    report.warmup_state = finished_state(api, warmup)
    with _Sampler(stack.airflow.url, timeout) as quiet:
        time.sleep(3)
    report.quiet_healthz, report.quiet_health = quiet.healthz, quiet.health

    bystander = f"bystander-{tag}"
    start_bystander(api, bystander_pod, bystander)
    starts = _now_iso()
    storm = [
        webhook_body([storm_alert(storm_pod, f"{tag}{i:010x}", starts, container=f"c{i}")])
        for i in range(distinct)
    ]
    same = webhook_body([storm_alert(identical_pod, f"{tag}same000000", starts)])
    with _Sampler(stack.airflow.url, timeout) as during:
        first = asyncio.run(_post_all(stack.webhook_url, stack.token, storm, len(storm), timeout))
        second = asyncio.run(
            _post_all(stack.webhook_url, stack.token, [same] * identical, concurrency, timeout)
        )
    report.storm_healthz, report.storm_health = during.healthz, during.health
    report.distinct_latency = Samples(ms for _, _, ms in first)
    report.distinct_status = [s for s, _, _ in first]
    report.distinct_decisions = _decisions(first)
    report.identical_latency = Samples(ms for _, _, ms in second)
    report.identical_status = [s for s, _, _ in second]
    report.identical_decisions = _decisions(second)
    report.answers = [a for _, a, _ in first + second]

    report.bystander_state = finished_state(api, bystander)
    created = storm_runs_for(api, storm_pod)
    report.storm_runs = len(created)
    report.identical_runs = len(storm_runs_for(api, identical_pod))
    with psycopg2.connect(stack.history_uri()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT dag_run_id FROM kubernaut_alert_decisions WHERE decision = 'triggered' "
            "AND target_namespace = 'demo' AND target_name IN (%s, %s)",
            (storm_pod, identical_pod),
        )
        recorded = [row[0] for row in cur.fetchall()]
    conn.close()
    report.triggered_rows = len(recorded)
    every = created + storm_runs_for(api, identical_pod)
    report.runs_without_decision = [r["dag_run_id"] for r in every if r["dag_run_id"] not in recorded]
    return report
