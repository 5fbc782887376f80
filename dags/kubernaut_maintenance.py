"""Airflow DAG file: ``kubernaut_maintenance``, the daily history prune (kubernaut.maintenance).
Its own file: the template DAGs' file (kubernaut_dags.py) and its one-DAG parse stay as they are."""

from kubernaut.maintenance import MAINTENANCE_DAG_ID, maintenance_dag

globals()[MAINTENANCE_DAG_ID] = maintenance_dag()
