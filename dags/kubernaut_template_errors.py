"""Airflow DAG file that reports broken templates as its import error (file, line, field).

It defines no remediation DAG: Airflow marks every DAG of a file with an import error
stale, so the DAGs of the valid templates come from kubernaut_dags.py and keep running.
"""

from pathlib import Path

from kubernaut.factory import template_errors, templates_dir

globals().update(template_errors(templates_dir(Path(__file__).resolve().parent.parent / "templates")))
