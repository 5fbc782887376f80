"""Executors: Airflow's own, with the task imports preloaded before they fork task processes."""

from __future__ import annotations

from airflow.executors.local_executor import LocalExecutor

from kubernaut.preload import preload


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor whose workers (forked at start) inherit :mod:`kubernaut.preload`'s imports,
    so each task process it forks skips them. Select it with
    ``[core] executor = kubernaut.executors.PreloadingLocalExecutor``."""

    def start(self) -> None:
        preload()
        super().start()
