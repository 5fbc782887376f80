"""What a scenario's steps reach besides the cluster, as local processes the simulator starts:

* a **notify sink**: a local HTTP receiver behind the webhook connection the ``notify`` action
  posts to (``notify_conn_id``, and any literal ``conn_id`` of a notify/annotation step), so
  the action runs its production path (connection, POST, retries) and a scenario can assert
  what was sent (``expect.notified``);
* **Prometheus** (the real binary, found on PATH as for the tests: Debian ``prometheus``)
  scraping every second a metrics endpoint the simulator serves from the scenario's declared
  series (``prometheus.series``), each a constant or read live from a sandbox object's field
  (as kube-state-metrics and the kubelet export what the cluster says).
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernaut.simulate.scenario import NotifiedCheck, PrometheusSpec, Series

SCRAPE_JOB = "simulate"
NOTIFY_ACTIONS = ("notify", "create_alert_annotation")


class ServiceSetupError(RuntimeError):
    """A service the scenario needs could not start (e.g. no Prometheus binary)."""


@contextmanager
def connections(env: Mapping[str, str]) -> Iterator[None]:
    """Airflow connections (``AIRFLOW_CONN_*``) set for the block only."""
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- notify sink ---------------------------------------------------------------------------------


@dataclass
class Sent:
    """One request the sink received."""

    method: str
    path: str
    body: Any

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "body": self.body}


def _reply(handler: BaseHTTPRequestHandler, status: int, content_type: str, data: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A server on a free loopback port, serving from a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _shut(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


@dataclass
class NotifySink:
    """Records every request; answers 200 ``{"ok": true}`` as a webhook receiver does."""

    sent: list[Sent] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> NotifySink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                sink.sent.append(Sent(self.command, self.path, body))
                _reply(self, 200, "application/json", b'{"ok": true}')

            do_PUT = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = _serve(Handler)
        return self

    def stop(self) -> None:
        _shut(self._server)


def notify_connections(template: Any, notify_conn_id: str) -> list[str]:
    """The webhook connections the template's notify steps post to: the configured one and
    each literal ``conn_id`` (a rendered one cannot be known before the run)."""
    found = [notify_conn_id]
    for step in template.steps:
        conn = step.action.parameters.get("conn_id")
        if step.action.action in NOTIFY_ACTIONS and isinstance(conn, str) and "{" not in conn:
            found.append(conn)
    return list(dict.fromkeys(found))


FIELD_PART = re.compile(r"\[([^\]]+)\]|([^.\[\]]+)")


def dig(obj: Any, path: str) -> Any:
    """The value at a dotted path (``spec.containers.0.image``; a key with dots in brackets:
    ``annotations[a.b/c]``), None if there is none."""
    current = obj
    for bracketed, plain in FIELD_PART.findall(path):
        part = bracketed or plain
        if isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        elif isinstance(current, dict) and part in current:
            current = current[part]
        else:
            return None
    return current


def check_notified(check: NotifiedCheck, sent: list[Sent]) -> tuple[bool, str, str]:
    """(passes, what it checks, why not)."""
    wants = [f"{k}={v!r}" for k, v in check.body.items()] + [f"{k}~{v!r}" for k, v in check.contains.items()]
    text = f"notified{' ' + check.path if check.path else ''} {{{', '.join(wants)}}}"
    if check.count is not None:
        text += f" x{check.count}"

    def matches(item: Sent) -> bool:
        if check.path is not None and item.path != check.path:
            return False
        if any(dig(item.body, k) != v for k, v in check.body.items()):
            return False
        return all(str(v) in str(dig(item.body, k) or "") for k, v in check.contains.items())

    hits = [s for s in sent if matches(s)]
    ok = len(hits) == check.count if check.count is not None else bool(hits)
    if ok:
        return True, text, ""
    seen = "; ".join(json.dumps(s.body, sort_keys=True, default=str)[:300] for s in sent) or "nothing"
    return False, text, f"{len(hits)} matching of {len(sent)} sent: {seen}"


# --- Prometheus ----------------------------------------------------------------------------------


def _quantity(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    from kubernetes.utils import parse_quantity

    try:
        return float(parse_quantity(str(value)))
    except ValueError:
        return None


def series_value(
    series: Series, lookup: Callable[[str, str | None, str], dict[str, Any] | None]
) -> float | None:
    """The series' value now; None (not exported) when its object or field is absent."""
    if series.from_ is None:
        return series.value
    ref = series.from_
    obj = lookup(ref.kind, ref.namespace, ref.name)
    found = _quantity(dig(obj, ref.field)) if obj is not None else None
    return None if found is None else found + series.add


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exposition(spec: PrometheusSpec, lookup: Callable[[str, str | None, str], dict[str, Any] | None]) -> str:
    """The text exposition format: one gauge sample per declared series that has a value."""
    lines: list[str] = []
    typed: set[str] = set()
    for series in spec.series:
        value = series_value(series, lookup)
        if value is None:
            continue
        if series.metric not in typed:
            typed.add(series.metric)
            lines.append(f"# TYPE {series.metric} gauge")
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(series.labels.items()))
        shown = repr(value) if math.isfinite(value) else ("NaN" if math.isnan(value) else "+Inf")
        lines.append(f"{series.metric}{{{labels}}} {shown}")
    return "\n".join(lines) + "\n"


@dataclass
class Metrics:
    """The metrics endpoint Prometheus scrapes; ``lookup`` is set once the sandbox runs."""

    spec: PrometheusSpec
    lookup: Callable[[str, str | None, str], dict[str, Any] | None] | None = None
    _server: ThreadingHTTPServer | None = None

    @property
    def target(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> Metrics:
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                lookup = metrics.lookup or (lambda kind, namespace, name: None)
                try:
                    data = exposition(metrics.spec, lookup).encode()
                    status = 200
                except Exception as exc:  # a scrape error shows as up == 0, with the reason
                    data, status = f"{type(exc).__name__}: {exc}\n".encode(), 500
                _reply(self, status, "text/plain; version=0.0.4", data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = _serve(Handler)
        return self

    def stop(self) -> None:
        _shut(self._server)


def selector(series: Series) -> str:
    labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(series.labels.items()))
    return f"{series.metric}{{{labels}}}"


@dataclass
class PrometheusService:
    metrics: Metrics
    process: Any  # kubernaut.testing.services.ServiceProcess
    since: float = 0.0  # wall time the current spec was set: only later scrapes count

    @property
    def url(self) -> str:
        return str(self.process.url)

    def _query(self, query: str) -> list[Any]:
        import httpx

        reply = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=5.0)
        reply.raise_for_status()
        result: list[Any] = reply.json()["data"]["result"]
        return result

    def wait_scraped(self, timeout: float = 20.0) -> None:
        """Until a scrape after ``since`` happened and every declared series that has a value
        now is queryable. (Prometheus applies new scrape targets at most every 5 s, so a fresh
        process answers after up to ~5 s; a reused one within a scrape interval.)"""
        import time

        lookup = self.metrics.lookup or (lambda kind, namespace, name: None)
        wanted = [s for s in self.metrics.spec.series if series_value(s, lookup) is not None]
        deadline = time.monotonic() + timeout
        while True:
            missing = []
            # timestamp() of a bare selector is the scrape's time; of an expression (`up == 1`)
            # it is the evaluation time, which is always "now" and let stale samples through.
            last = self._query(f'timestamp(up{{job="{SCRAPE_JOB}"}}) and up{{job="{SCRAPE_JOB}"}} == 1')
            if not last or float(last[0]["value"][1]) <= self.since:
                missing.append(f"a scrape of the metrics endpoint {self.metrics.target}")
            for s in wanted if not missing else []:
                if not self._query(selector(s)):
                    missing.append(selector(s))
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise ServiceSetupError(
                    f"Prometheus did not scrape {', '.join(missing)} within {timeout:.0f}s:\n"
                    + self.process.log_tail(10)
                )
            time.sleep(0.2)


@contextmanager
def prometheus_service(spec: PrometheusSpec, workdir: Path) -> Iterator[PrometheusService]:
    """Prometheus (``prometheus`` on PATH, or $KUBERNAUT_PROMETHEUS_BIN) scraping the metrics
    endpoint every second; a clear error when the binary is missing."""
    from kubernaut.testing.services import ServiceStartError, find_binary, start_prometheus

    try:
        binary = find_binary("prometheus")
    except ServiceStartError as exc:
        raise ServiceSetupError(f"this scenario declares `prometheus:` series: {exc}") from exc
    if not os.access(binary, os.X_OK):
        raise ServiceSetupError(
            f"this scenario declares `prometheus:` series: {binary} (from $KUBERNAUT_PROMETHEUS_BIN) "
            "is not an executable file"
        )
    metrics = Metrics(spec).start()
    try:
        try:
            process = start_prometheus(
                workdir, scrape_targets=[metrics.target], scrape_interval="1s", job_name=SCRAPE_JOB
            )
        except ServiceStartError as exc:
            raise ServiceSetupError(f"Prometheus did not start: {exc}") from exc
        try:
            yield PrometheusService(metrics, process)
        finally:
            process.stop()
    finally:
        metrics.stop()


class SharedPrometheus:
    """One Prometheus for every scenario of a ``simulate`` run (started by the first that
    declares series; each later one swaps the series served and waits for a fresh scrape)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._stack = ExitStack()
        self._service: PrometheusService | None = None

    @contextmanager
    def use(self, spec: PrometheusSpec) -> Iterator[PrometheusService]:
        import time

        if self._service is None:
            self._service = self._stack.enter_context(prometheus_service(spec, self.workdir))
        self._service.metrics.spec, self._service.metrics.lookup = spec, None
        self._service.since = time.time()
        try:
            yield self._service
        finally:
            self._service.metrics.lookup = None

    def close(self) -> None:
        self._stack.close()
