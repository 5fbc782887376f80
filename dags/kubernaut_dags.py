"""Airflow DAG entry file: one DAG per valid remediation template in ``templates/``.

Broken templates are reported by kubernaut_template_errors.py (an import error here would
make Airflow mark every DAG of this file stale). Set KUBERNAUT_TEMPLATES_DIR to load
templates from elsewhere. A worker parsing this file to run one task (Airflow's parsing
context names the DAG) gets only that DAG built.
"""

from pathlib import Path

from airflow.sdk import get_parsing_context

from kubernaut.factory import build_dags, templates_dir

TEMPLATES = templates_dir(Path(__file__).resolve().parent.parent / "templates")

globals().update(build_dags(TEMPLATES, dag_id=get_parsing_context().dag_id))
