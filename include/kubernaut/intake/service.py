"""What the webhook does with a valid payload: decide every alert, each on its own.

Templates are reloaded when their files change; history connections are pooled (one per
thread of the intake's own small pool), the Airflow client is shared.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from kubernaut.clusters import ClusterMap
from kubernaut.config import KubernautConfig, load_config
from kubernaut.intake.airflow_client import AirflowGateway, AirflowSettings
from kubernaut.intake.decisions import AirflowPort, AlertDecision, Decider, HistoryPort
from kubernaut.intake.history_checks import IntakeHistory
from kubernaut.intake.launcher import InFlight, Launcher
from kubernaut.intake.payload import WebhookPayload
from kubernaut.intake.routing import Router
from kubernaut.intake.settings import IntakeSettings
from kubernaut.intake.suppression import (
    AlertSource,
    CachedLookups,
    CachedSource,
    ClusterLookup,
    Suppressor,
    alertmanager_source,
)
from kubernaut.template_params import TemplateParameters
from kubernaut.templates import load_templates
from kubernaut.templates.loader import template_files

log = logging.getLogger(__name__)
T = TypeVar("T")
TEMPLATES_RECHECK_SECONDS = 1.0


class TemplateCache:
    """The router for a templates directory, rebuilt when a file is added, removed or changed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._key: tuple[tuple[str, float], ...] | None = None
        self._router = Router([])
        self._lock = threading.Lock()

    def router(self) -> Router:
        key = tuple((str(f), f.stat().st_mtime) for f in template_files([self.directory]) if f.exists())
        with self._lock:
            if key != self._key:
                report = load_templates(self.directory)
                for error in report.all_errors():
                    log.error("kubernaut intake: template skipped: %s", error)
                self._router, self._key = Router(report.templates), key
            return self._router


class HistoryPool:
    """Blocking history work (psycopg2) on a small thread pool of the intake's own: a capacity
    limiter of ``size`` instead of anyio's default one, whose 40 threads also serve the
    api-server's own endpoints. One history (connection) per thread, reused."""

    def __init__(self, factory: Callable[[], HistoryPort], size: int) -> None:
        self._factory = factory
        self.size = size
        self._idle: queue.SimpleQueue[HistoryPort] = queue.SimpleQueue()
        self._limiters: dict[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = {}

    def _limiter(self) -> anyio.CapacityLimiter:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            self._limiters = {lp: lim for lp, lim in self._limiters.items() if not lp.is_closed()}
            limiter = self._limiters[loop] = anyio.CapacityLimiter(self.size)
        return limiter

    async def run_sync(self, work: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(work, limiter=self._limiter())

    async def __call__(self, work: Callable[[HistoryPort], T]) -> T:
        return await self.run_sync(lambda: self._with_history(work))

    def _with_history(self, work: Callable[[HistoryPort], T]) -> T:
        try:
            history = self._idle.get_nowait()
        except queue.Empty:
            history = self._factory()
        try:
            return work(history)
        finally:
            self._idle.put(history)  # a broken connection reconnects on its next use

    def close(self) -> None:
        while True:
            try:
                history = self._idle.get_nowait()
            except queue.Empty:
                return
            close = getattr(history, "close", None)
            if callable(close):
                close()


class IntakeService:
    def __init__(
        self,
        settings: IntakeSettings,
        *,
        history_factory: Callable[[], HistoryPort] | None = None,
        airflow: AirflowPort | None = None,
        config: KubernautConfig | None = None,
        cluster: Callable[[str], ClusterLookup | None] | None = None,
        alertmanager: AlertSource | None = None,
    ) -> None:
        self.settings = settings
        # Symptom suppression's sources (kubernaut.intake.suppression): the cluster through the
        # template's Kubernetes connection, Alertmanager through config.alertmanager_conn_id.
        self._cluster = cluster or CachedLookups()
        self._alertmanager = alertmanager
        self._alertmanager_sources: dict[str, AlertSource] = {}
        self.templates = TemplateCache(settings.templates_dir)
        self.history = HistoryPool(
            history_factory or (lambda: IntakeHistory(settings.history_conn_id)), settings.db_threads
        )
        self._airflow = airflow
        self._config = config
        self._lock = threading.Lock()
        self._checked: tuple[float, tuple[AirflowPort, KubernautConfig, Router]] | None = None
        self._inflight: dict[asyncio.AbstractEventLoop, InFlight] = {}

    def _dependencies(self) -> tuple[AirflowPort, KubernautConfig, Router]:
        with self._lock:  # built on first use: the plugin is imported by every Airflow component
            if self._airflow is None:
                self._airflow = AirflowGateway(AirflowSettings.from_env())
            if self._config is None:
                self._config = load_config()
            return self._airflow, self._config, self.templates.router()

    def _inflight_here(self) -> InFlight:
        loop = asyncio.get_running_loop()
        if loop not in self._inflight:
            self._inflight = {lp: f for lp, f in self._inflight.items() if not lp.is_closed()}
            self._inflight[loop] = InFlight()
        return self._inflight[loop]

    async def _current(self) -> tuple[AirflowPort, KubernautConfig, Router]:
        """The dependencies; template files are checked for changes at most once a second (on
        the pool: config may be an Airflow Variable, templates are files), not per webhook."""
        now = time.monotonic()
        if self._checked is not None and now - self._checked[0] < TEMPLATES_RECHECK_SECONDS:
            return self._checked[1]
        current = await self.history.run_sync(self._dependencies)
        self._checked = (now, current)
        return current

    async def warm_up(self) -> None:
        airflow, _, _ = await self._current()
        await airflow.warm()
        await self.history(lambda h: h.ping())

    def _alertmanager_source(self, config: KubernautConfig) -> AlertSource:
        if self._alertmanager is not None:
            return self._alertmanager
        conn_id = config.alertmanager_conn_id
        if conn_id not in self._alertmanager_sources:
            self._alertmanager_sources[conn_id] = CachedSource(alertmanager_source(conn_id))
        return self._alertmanager_sources[conn_id]

    async def decide_all(self, payload: WebhookPayload, on_decision: Callable[[AlertDecision], None]) -> None:
        """Decide each alert in order; ``on_decision`` sees each result as soon as it is made
        (so a 503 half-way still reports what was already launched)."""
        airflow, config, router = await self._current()
        decider = Decider(
            router,
            config.policy,
            max_failures=self.settings.max_failures,
            clusters=ClusterMap.from_config(config),
        )
        decider.blocking = config.blocking
        decider.choice = config.choice
        decider.parameters = TemplateParameters.from_config(config)
        if config.suppression.enabled:
            decider.suppressor = Suppressor(
                config.suppression,
                payload=list(payload.alerts),
                alertmanager=self._alertmanager_source(config),
                cluster=self._cluster,
                clusters=decider.clusters,
                routed=lambda labels: router.route(labels) is not None,
            )
        launcher = Launcher(decider, self.history, airflow, inflight=self._inflight_here())
        launcher.escalation = config.escalation
        for alert in payload.alerts:
            on_decision(await launcher.decide(alert))
