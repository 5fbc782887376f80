"""``kubernaut route`` (preview decisions for a payload file) and ``kubernaut serve`` (the receiver
on its own, for installations that keep it outside the Airflow api-server)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from kubernaut.clusters import ClusterMap
from kubernaut.config import ConfigError, SuppressionConfig, load_config
from kubernaut.history import DEFAULT_CONN_ID
from kubernaut.intake.decisions import Decider, HistoryReader
from kubernaut.intake.payload import PayloadError, parse_payload
from kubernaut.intake.routing import Router
from kubernaut.intake.suppression import KubeLookup, Suppressor, alertmanager_source
from kubernaut.paths import templates_dir
from kubernaut.template_params import TemplateParameters
from kubernaut.templates import load_templates

EXIT_OK, EXIT_USAGE = 0, 2


def _history_for_route(mode: str, conn_id: str) -> tuple[HistoryReader | None, str]:
    """The history the preview reads (it never writes or locks: ``Decider.decide`` only reads)."""
    if mode == "off":
        return None, "history off"
    configured = f"AIRFLOW_CONN_{conn_id.upper()}" in os.environ
    if mode == "auto" and not configured:
        return None, f"no history connection ({conn_id}): deciding on routing alone"
    from kubernaut.intake.history_checks import IntakeHistory

    history = IntakeHistory(conn_id)
    try:
        history.version()
    except Exception as exc:
        if mode == "on":
            raise
        return None, f"history unreachable ({exc}): deciding on routing alone"
    return history, f"history {conn_id}"


def route_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kubernaut route",
        description="Print the decision for each alert of a webhook payload, as JSON. Launches nothing.",
    )
    parser.add_argument("--alerts", required=True, help="webhook payload file (version 4), or - for stdin")
    parser.add_argument("--templates", type=Path, default=None, help="templates dir (default templates/)")
    parser.add_argument(
        "--history",
        choices=("auto", "on", "off"),
        default="auto",
        help="check cooldown/busy/blocked in the history DB (auto: if its connection is configured)",
    )
    parser.add_argument("--history-conn-id", default=DEFAULT_CONN_ID)
    parser.add_argument(
        "--kubeconfig",
        default=None,
        help="symptom suppression offline: read each pod's node and owner from this cluster",
    )
    parser.add_argument("--context", default=None, help="kubeconfig context (with --kubeconfig)")
    parser.add_argument(
        "--alertmanager",
        default=None,
        help="Alertmanager URL whose active node alerts count as root causes (with --kubeconfig)",
    )
    args = parser.parse_args(argv)

    try:
        text = sys.stdin.read() if args.alerts == "-" else Path(args.alerts).read_text()
        payload = parse_payload(json.loads(text))
    except OSError as exc:
        print(f"kubernaut route: cannot read {args.alerts}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, RecursionError) as exc:  # PayloadError is a ValueError too
        problems = exc.problems if isinstance(exc, PayloadError) else [f"not valid JSON: {exc}"]
        for problem in problems:
            print(f"kubernaut route: {args.alerts}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    directory = args.templates or templates_dir()
    if not directory.is_dir():
        print(f"kubernaut route: no such templates directory: {directory}", file=sys.stderr)
        return EXIT_USAGE
    report = load_templates(directory)
    for error in report.all_errors():
        print(f"kubernaut route: template skipped: {error}", file=sys.stderr)
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"kubernaut route: {exc}", file=sys.stderr)
        return EXIT_USAGE
    history, note = _history_for_route(args.history, args.history_conn_id)
    print(f"kubernaut route: {note}; Airflow not contacted (paused/duplicate not checked)", file=sys.stderr)
    decider = Decider(
        Router(report.templates), config.policy, history=history, clusters=ClusterMap.from_config(config)
    )
    decider.blocking = config.blocking
    decider.choice = config.choice
    decider.parameters = TemplateParameters.from_config(config)
    if args.kubeconfig and config.suppression.enabled:
        decider.suppressor = _route_suppressor(args, config.suppression, list(payload.alerts))
        decider.suppressor.clusters = decider.clusters
        decider.suppressor.routed = lambda labels: decider.router.route(labels) is not None
    print(json.dumps([decider.decide(alert).to_dict() for alert in payload.alerts], indent=2))
    return EXIT_OK


def _route_suppressor(args: argparse.Namespace, config: SuppressionConfig, alerts: list[Any]) -> Suppressor:
    """Suppression for the preview: the pods from ``--kubeconfig`` (every template's connection
    is that cluster here), node alerts from the payload, ``--alertmanager`` and the history."""
    lookup = KubeLookup.from_kubeconfig(args.kubeconfig, args.context)
    source = alertmanager_source(url=args.alertmanager) if args.alertmanager else None
    return Suppressor(config, payload=alerts, alertmanager=source, cluster=lambda _conn_id: lookup)


def serve_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kubernaut serve",
        description="Serve the alert intake (POST /kubernaut/alerts) outside the Airflow api-server. "
        "Configured by the environment: KUBERNAUT_WEBHOOK_TOKEN[_FILE], KUBERNAUT_AIRFLOW_URL, "
        "KUBERNAUT_AIRFLOW_USERNAME, KUBERNAUT_AIRFLOW_PASSWORD[_FILE], AIRFLOW_CONN_KUBERNAUT_HISTORY.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--templates", type=Path, default=None, help="templates directory")
    args = parser.parse_args(argv)
    if args.templates is not None:
        os.environ["KUBERNAUT_TEMPLATES_DIR"] = str(args.templates.resolve())

    import uvicorn
    from fastapi import FastAPI

    from kubernaut.intake.app import create_app
    from kubernaut.intake.settings import IntakeSettings

    settings = IntakeSettings.from_env()
    if settings.token.current() is None:
        print("kubernaut serve: set KUBERNAUT_WEBHOOK_TOKEN or KUBERNAUT_WEBHOOK_TOKEN_FILE", file=sys.stderr)
        return EXIT_USAGE
    intake = create_app()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with intake.router.lifespan_context(intake):  # the intake's warm-up, as in the api-server
            yield

    root = FastAPI(title="Kubernaut alert intake", openapi_url=None, lifespan=lifespan)
    root.mount("/kubernaut", intake)  # same URL as the plugin: one Alertmanager config for both
    uvicorn.run(root, host=args.host, port=args.port, log_level="info")
    return EXIT_OK
