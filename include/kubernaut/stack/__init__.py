"""The production shape on one machine: CeleryExecutor on Redis, every Airflow component as
its own process (``kubernaut stack``), configured exactly as ``docker-compose.yaml`` is.

- :mod:`kubernaut.stack.settings`: the Airflow settings the stack and the compose file share;
- :mod:`kubernaut.stack.processes`: starting, stopping and killing the component processes;
- :mod:`kubernaut.stack.stack`: the stack itself (databases, sandbox, Airflow, Alertmanager);
- :mod:`kubernaut.stack.cli`: ``kubernaut stack``.
"""
