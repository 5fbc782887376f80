"""Celery configuration of the workers: Airflow's own, unchanged, plus the project's modules
imported once in the worker before it forks its pool.

Airflow 3 runs each task in a process forked from a Celery pool process; whatever that process
has imported, the task has for free. Without this, every task start imports the DAG factory,
the actions and the Kubernetes client again (~0.25 CPU s per task on a 2-core machine, see
bench/throughput.py). Selected by ``[celery] celery_config_options`` in
:data:`kubernaut.stack.settings.SHARED`.
"""

from __future__ import annotations

import importlib
import logging

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = DEFAULT_CELERY_CONFIG

PRELOAD = (
    "kubernetes.client",
    "kubernaut.factory",
    "kubernaut.operators.step",
    "kubernaut.operators.runner",
    "kubernaut.operators.rollback",
    "kubernaut.actions.registry",
    "kubernaut.history",
    "kubernaut.kube.clients",
)


def preload(modules: tuple[str, ...] = PRELOAD) -> list[str]:
    """Import ``modules``; the ones that failed (an optimisation only: a task imports what it
    needs itself, and reports the error where it belongs)."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            logging.getLogger(__name__).warning("kubernaut: not preloading %s: %s", name, exc)
            failed.append(name)
    return failed


preload()
