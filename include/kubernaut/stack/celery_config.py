"""Celery configuration of the workers: Airflow's own, unchanged, plus the task imports
preloaded once in the worker before it forks its pool (:mod:`kubernaut.preload`). Selected by
``[celery] celery_config_options`` in :data:`kubernaut.stack.settings.SHARED`.
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

from kubernaut.preload import preload

CELERY_CONFIG = DEFAULT_CELERY_CONFIG

preload()
