"""Small clients for the services remediation talks to besides the cluster: Prometheus
(HTTP API v1), Alertmanager (API v2) and JSON webhooks. Each is reached through an
Airflow connection, never through a URL taken from alert data."""

from kubernaut.services.alertmanager import AlertmanagerClient, LabelMatcher
from kubernaut.services.connection import Endpoint, endpoint_from_connection
from kubernaut.services.http import ServiceClient, ServiceError, safe_path
from kubernaut.services.prometheus import PrometheusClient, Sample, Series

__all__ = [
    "AlertmanagerClient",
    "Endpoint",
    "LabelMatcher",
    "PrometheusClient",
    "Sample",
    "Series",
    "ServiceClient",
    "ServiceError",
    "endpoint_from_connection",
    "safe_path",
]
