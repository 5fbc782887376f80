"""What every kubernaut task of a run shares: the alert, the history row, the config."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from kubernaut.alert import alert_context
from kubernaut.config import ConfigError, KubernautConfig, load_config
from kubernaut.history import History, HistoryUnavailable

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    conf: Mapping[str, Any]
    alert: dict[str, Any]
    config: KubernautConfig
    history: History | None
    run_id: int | None

    @classmethod
    def open(cls, context: Any, template: str, dry_run: bool) -> RunContext:
        dag_run = context["dag_run"]
        conf: Mapping[str, Any] = dag_run.conf or {}
        alert = alert_context(conf)
        try:
            config = load_config()
        except ConfigError as exc:
            # Never the defaults instead: they would drop the policy this configuration sets
            # (e.g. require_label). Failing the task (no retry) stops before anything changes.
            raise AirflowFailException(
                f"kubernaut configuration: {exc}; refusing to run with the default policy"
            ) from exc
        history: History | None = History(config.history_conn_id)
        run_id: int | None = None
        try:
            assert history is not None
            run_id = history.ensure_run(
                dag_run.dag_id, dag_run.run_id, template, alert, dry_run or bool(conf.get("dry_run"))
            )
        except (HistoryUnavailable, Exception) as exc:  # no history: read-only steps still run
            log.warning("kubernaut: history unavailable (%s): %s", config.history_conn_id, exc)
            history = None
        return cls(conf=conf, alert=alert, config=config, history=history, run_id=run_id)
