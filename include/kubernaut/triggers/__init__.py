"""Airflow triggers: waits that run in the triggerer, never in a worker slot.

The triggerer imports these from the installed package (it does not load DAG bundles).
"""
