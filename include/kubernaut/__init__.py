"""Kubernaut on Airflow: alert-driven, automated remediation for Kubernetes."""

__version__ = "0.1.0"
