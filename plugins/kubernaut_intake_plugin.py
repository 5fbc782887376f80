"""Serves the Kubernaut alert intake from the Airflow api-server: POST /kubernaut/alerts."""

from airflow.plugins_manager import AirflowPlugin

from kubernaut.intake.app import create_app


class KubernautIntakePlugin(AirflowPlugin):
    name = "kubernaut_intake"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/kubernaut", "name": "Kubernaut alert intake"}]
