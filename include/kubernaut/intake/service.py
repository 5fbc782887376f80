"""What the webhook does with a valid payload: decide every alert, each on its own.

Templates are reloaded when their files change; the history connection is opened per
payload (the advisory lock lives on it), the Airflow client is shared.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from kubernaut.config import KubernautConfig, load_config
from kubernaut.intake.airflow_client import AirflowGateway, AirflowSettings
from kubernaut.intake.decisions import AirflowPort, AlertDecision, Decider, HistoryPort
from kubernaut.intake.history_checks import IntakeHistory
from kubernaut.intake.payload import WebhookPayload
from kubernaut.intake.routing import Router
from kubernaut.intake.settings import IntakeSettings
from kubernaut.templates import load_templates
from kubernaut.templates.loader import template_files

log = logging.getLogger(__name__)


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


class IntakeService:
    def __init__(
        self,
        settings: IntakeSettings,
        *,
        history_factory: Callable[[], HistoryPort] | None = None,
        airflow: AirflowPort | None = None,
        config: KubernautConfig | None = None,
    ) -> None:
        self.settings = settings
        self.templates = TemplateCache(settings.templates_dir)
        self._history_factory = history_factory or (lambda: IntakeHistory(settings.history_conn_id))
        self._airflow = airflow
        self._config = config
        self._lock = threading.Lock()

    def _dependencies(self) -> tuple[AirflowPort, KubernautConfig]:
        with self._lock:  # built on first use: the plugin is imported by every Airflow component
            if self._airflow is None:
                self._airflow = AirflowGateway(AirflowSettings.from_env())
            if self._config is None:
                self._config = load_config()
            return self._airflow, self._config

    def decide_all(self, payload: WebhookPayload, on_decision: Callable[[AlertDecision], None]) -> None:
        """Decide each alert in order; ``on_decision`` sees each result as soon as it is made
        (so a 503 half-way still reports what was already launched)."""
        airflow, config = self._dependencies()
        router = self.templates.router()
        history = self._history_factory()
        try:
            decider = Decider(
                router,
                config.policy,
                history=history,
                airflow=airflow,
                max_failures=self.settings.max_failures,
            )
            for alert in payload.alerts:
                on_decision(decider.decide(alert))
        finally:
            close = getattr(history, "close", None)
            if callable(close):
                close()
