"""The template's ``effectiveness:`` field: checked with file/line/field errors, and handed by
the DAG's ``finalize`` to the run's assessment, a run of the ``kubernaut_assessment`` DAG (not a
task of the remediation run: that would hold the template's ``max_active_runs`` for 40 minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubernaut.config import parse_config
from kubernaut.factory import assessment_dag, build_dag
from kubernaut.operators.assess import (
    ASSESS_TASK,
    ASSESSMENT_DAG_ID,
    MAX_RUN_ID,
    KubernautAssessOperator,
    assessment_run_id,
)
from kubernaut.operators.rollback import KubernautFinalizeOperator
from kubernaut.templates.errors import TemplateLoadError
from kubernaut.templates.loader import load_template

TEMPLATE = """\
name: assessed
alert_types: [X]
{effectiveness}
steps:
  - name: a
    action: {{type: custom, action: log, parameters: {{message: hi}}}}
"""


def write(tmp_path: Path, effectiveness: str) -> Path:
    path = tmp_path / "assessed.yaml"
    path.write_text(TEMPLATE.format(effectiveness=effectiveness))
    return path


def test_bad_effectiveness_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "effectiveness:\n  after: soon\n  metrics:\n    - {query: up, better: sideways}")
    with pytest.raises(TemplateLoadError) as caught:
        load_template(path)
    text = str(caught.value)
    assert f"{path}:4:10: effectiveness.after: expected a duration like '30s'" in text
    assert (
        f"{path}:6:27: effectiveness.metrics[0].better: expected 'lower' or 'higher', got 'sideways'" in text
    )


def test_finalize_carries_the_templates_effectiveness_and_no_task_waits(tmp_path: Path) -> None:
    path = write(
        tmp_path, "effectiveness: {after: 5s, window: 1m, metrics: [{query: 'sum(up)', better: higher}]}"
    )
    dag = build_dag(load_template(path))
    assert {t.task_id for t in dag.tasks} == {"a", "rollback", "finalize"}  # ends at finalize
    finalize = dag.get_task("finalize")
    assert isinstance(finalize, KubernautFinalizeOperator) and not finalize.downstream_task_ids
    assert finalize.assessment == {
        "after": 5.0,
        "window": 60.0,
        "metrics": [{"query": "sum(up)", "better": "higher"}],
    }


def test_the_assessment_dag(tmp_path: Path) -> None:
    dag = assessment_dag()
    assert dag.dag_id == ASSESSMENT_DAG_ID and dag.schedule is None and dag.max_active_runs == 1024
    [task] = dag.tasks
    assert isinstance(task, KubernautAssessOperator) and task.task_id == ASSESS_TASK
    assert dag.is_paused_upon_creation is False


def test_assessment_run_ids_are_derived_and_fit() -> None:
    one = assessment_run_id("kubernaut_x", "alert__ab12__20260101T000000")
    assert one == "assess__kubernaut_x__alert__ab12__20260101T000000"
    assert one == assessment_run_id("kubernaut_x", "alert__ab12__20260101T000000")
    assert one != assessment_run_id("kubernaut_y", "alert__ab12__20260101T000000")
    long_a, long_b = assessment_run_id("kubernaut_x", "r" * 249), assessment_run_id("kubernaut_x", "r" * 248)
    assert len(long_a) <= MAX_RUN_ID and len(long_b) <= MAX_RUN_ID and long_a != long_b


def test_unset_timing_comes_from_the_configuration(tmp_path: Path) -> None:
    dag = build_dag(load_template(write(tmp_path, "")))
    finalize = dag.get_task("finalize")
    assert isinstance(finalize, KubernautFinalizeOperator)
    assert finalize.assessment == {"after": None, "window": None, "metrics": []}
    config = parse_config({}, "test").effectiveness
    assert (config.after.total_seconds(), config.window.total_seconds(), config.threshold) == (600, 1800, 0.7)
    config = parse_config({"effectiveness": {"after": "5s", "window": "0s"}}, "test").effectiveness
    assert (config.after.total_seconds(), config.window.total_seconds()) == (5, 0)
