"""Remediations in the Airflow UI (plugin pages) and the history as Prometheus metrics."""
