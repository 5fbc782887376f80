"""What every remediation task needs, imported once in the process that forks the task
processes (a Celery worker before it forks its pool, the LocalExecutor before it forks its
workers): whatever that process has imported, a forked task has for free.

Profiled with py-spy on a Celery worker (bench/throughput.py shape, 5 read-only steps): ~89 % of
a step task's CPU was imports — the cncf-kubernetes hook module (it pulls in kubernetes_asyncio
and aiohttp, ~58 %), the postgres hook and psycopg for the history journal (~15 %), and the
plugin modules every task runner loads to find listeners (~13 %); once those were preloaded,
importing the built-in actions on first use was next (~10 %).
"""

from __future__ import annotations

import importlib
import logging

PRELOAD = (
    "kubernetes.client",
    "airflow.providers.cncf.kubernetes.hooks.kubernetes",
    "airflow.providers.postgres.hooks.postgres",
    "kubernaut.factory",
    # What the operators import when their tasks run (the DAG processor's parse does not):
    # tests/unit/test_celery_preload.py checks that every such import is listed here.
    "airflow.sdk",
    "airflow.sdk.exceptions",
    "airflow.sdk.execution_time.comms",
    "airflow.sdk.timezone",
    "kubernaut.actions.base",
    "kubernaut.actions.registry",
    "kubernaut.alert",
    "kubernaut.assessment",
    "kubernaut.assessment.probes",
    "kubernaut.assessment.run",
    "kubernaut.clusters",
    "kubernaut.config",
    "kubernaut.history",
    "kubernaut.intake.fallback",
    "kubernaut.kube",
    "kubernaut.kube.clients",
    # What the actions import when they run (a read of a deployment imports rollout and pods):
    # each compiled again in every task process where Python writes no bytecode cache.
    "kubernaut.actions.kubernetes.guards",
    "kubernaut.durations",
    "kubernaut.kube.diagnostics",
    "kubernaut.kube.discovery",
    "kubernaut.kube.errors",
    "kubernaut.kube.node_health",
    "kubernaut.kube.objects",
    "kubernaut.kube.patch_strategy",
    "kubernaut.kube.pods",
    "kubernaut.kube.quantity",
    "kubernaut.kube.rollout",
    "kubernaut.kube.timestamps",
    "kubernaut.kube.waiting",
    "kubernaut.kube.workloads",
    "kubernaut.policy",
    "kubernaut.secrets",
    "kubernaut.notifiers.escalation",
    "kubernaut.operators.approval",
    "kubernaut.operators.assess",
    "kubernaut.operators.recorder",
    "kubernaut.operators.resolved",
    "kubernaut.operators.rollback",
    "kubernaut.operators.run_context",
    "kubernaut.operators.runner",
    "kubernaut.operators.step",
    "kubernaut.rendering",
    "kubernaut.rollback",
    "kubernaut.services.alertmanager",
    "kubernaut.services.connection",
    "kubernaut.template_params",
    "kubernaut.templates.model",
    "kubernaut.triggers",
    "kubernaut.triggers.approval",
    "kubernaut.triggers.assessment",
    "kubernaut.triggers.wait",
    "kubernaut.waits.driver",
)


def warm_rendering() -> None:
    """Build kubernaut.rendering's environment (cached per process) and its lexer, and compile
    once: a forked task then renders without building them again. Keeps no template."""
    from kubernaut.rendering import _env

    env = _env()
    env.from_string("{{ a.b['c'] }}{% if d is defined %}{{ e | default('') }}{% endif %}")
    env.compile_expression("a is defined and b == 'c'")


def preload(modules: tuple[str, ...] = PRELOAD) -> list[str]:
    """Import ``modules`` and load Airflow's plugins (cached per process, so a forked task
    finds them loaded); return what failed (an optimisation only: a task imports what it needs
    itself, and reports the error where it belongs)."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            logging.getLogger(__name__).warning("kubernaut: not preloading %s: %s", name, exc)
            failed.append(name)
    try:  # the built-in actions, through the registry a task asks (it imports each on first use)
        from kubernaut.actions.registry import BUILTIN_ACTIONS, registry

        for kind, name in BUILTIN_ACTIONS:
            registry.get(kind, name)
    except Exception as exc:
        logging.getLogger(__name__).warning("kubernaut: not preloading the actions: %s", exc)
        failed.append("actions")
    try:  # the sandboxed Jinja environment and its lexer, built on a step's first render
        warm_rendering()
    except Exception as exc:
        logging.getLogger(__name__).warning("kubernaut: not preloading the rendering: %s", exc)
        failed.append("rendering")
    try:  # the template cache's stamp of the code (a walk of the package and of sys.path),
        # which every task's one-DAG parse checks; the fork runs this very code, so it holds.
        from kubernaut.templates.cache import code_stamp

        code_stamp()
    except Exception as exc:
        logging.getLogger(__name__).warning("kubernaut: not preloading the code stamp: %s", exc)
        failed.append("code stamp")
    try:
        from airflow.sdk.plugins_manager import _get_plugins

        _get_plugins()
    except Exception as exc:
        logging.getLogger(__name__).warning("kubernaut: not preloading the plugins: %s", exc)
        failed.append("plugins")
    return failed
