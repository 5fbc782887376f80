"""Alert intake: Alertmanager webhook -> template routing -> one Airflow DAG run per alert occurrence.

``payload`` validates the webhook body, ``routing`` picks the template and the target,
``decisions`` applies the safety checks, ``airflow_client`` launches runs through the
Airflow REST API, ``app`` is the FastAPI receiver and ``cli`` the ``route``/``serve`` commands.
"""
