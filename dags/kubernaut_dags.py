"""Airflow DAG entry file: one DAG per remediation template in ``templates/``.

Set KUBERNAUT_TEMPLATES_DIR to load templates from elsewhere.
"""

from pathlib import Path

from kubernaut.factory import build_dags, templates_dir

globals().update(build_dags(templates_dir(Path(__file__).resolve().parent.parent / "templates")))
