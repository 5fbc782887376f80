"""Airflow DAG entry file: one DAG per valid remediation template in ``templates/``.

Broken templates are reported by kubernaut_template_errors.py (an import error here would
make Airflow mark every DAG of this file stale). Set KUBERNAUT_TEMPLATES_DIR to load
templates from elsewhere.
"""

from pathlib import Path

from kubernaut.factory import build_dags, templates_dir

globals().update(build_dags(templates_dir(Path(__file__).resolve().parent.parent / "templates")))
