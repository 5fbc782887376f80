"""Airflow DAG entry file: one DAG per valid remediation template in ``templates/``.

Broken templates are reported by kubernaut_template_errors.py (an import error here would
make Airflow mark every DAG of this file stale). Set KUBERNAUT_TEMPLATES_DIR to load
templates from elsewhere. A worker parsing this file to run one task (Airflow's parsing
context names the DAG) gets only that DAG built. The ``kubernaut_assessment`` DAG (one run per
remediation run, docs/effectiveness.md) is defined here too.
"""

import logging
from pathlib import Path

from airflow.sdk import get_parsing_context

from kubernaut.factory import assessment_dag, build_dags, templates_dir
from kubernaut.operators.assess import ASSESSMENT_DAG_ID

TEMPLATES = templates_dir(Path(__file__).resolve().parent.parent / "templates")
WANTED = get_parsing_context().dag_id

# The effectiveness assessment of every remediation run: runs of one DAG of its own.
if WANTED in (None, ASSESSMENT_DAG_ID):
    globals()[ASSESSMENT_DAG_ID] = assessment_dag()
if WANTED != ASSESSMENT_DAG_ID:
    DAGS = build_dags(TEMPLATES, dag_id=WANTED)
    if DAGS.pop(ASSESSMENT_DAG_ID, None) is not None:  # the name is taken
        logging.getLogger(__name__).error("kubernaut: template 'assessment' ignored: rename it")
    globals().update(DAGS)
