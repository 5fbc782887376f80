"""Building kubernaut's operators (kubernaut.operators.base): Airflow's default-argument merge
runs once per task, not once per class with an ``__init__``, and the operator comes out as
Airflow would build it (DAG default_args applied, marked instantiated, own arguments kept)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.bases import operator as airflow_operator

from kubernaut.operators import KubernetesActionOperator
from kubernaut.operators.rollback import KubernautFinalizeOperator, KubernautRollbackOperator
from kubernaut.operators.spec import StepSpec

SPEC = StepSpec(
    template="t", name="look", action_type="kubernetes", action_name="get_pod_status", parameters={}
)


@pytest.fixture
def merges(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = airflow_operator.get_merged_defaults

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(airflow_operator, "get_merged_defaults", counting)
    return calls


def test_each_operator_merges_default_arguments_once(merges: list[int]) -> None:
    with DAG("kubernaut_build", schedule=None, default_args={"owner": "sre", "retries": 4}):
        step = KubernetesActionOperator(
            task_id="look", spec=SPEC, parameters={"n": {"type": "integer", "default": 2}}, upstream_steps=[]
        )
        assert len(merges) == 1
        rollback = KubernautRollbackOperator(task_id="rollback", template="t")
        finalize = KubernautFinalizeOperator(task_id="finalize", template="t", assessment={"after": 60.0})
    assert len(merges) == 3
    # The one merge still applies the DAG's default_args to every operator.
    assert [(op.owner, op.retries) for op in (step, rollback, finalize)] == [("sre", 4)] * 3
    assert step.spec is SPEC and step.upstream_steps == [] and finalize.assessment == {"after": 60.0}
    assert step.resolve_params({"n": "5"}) == {"n": 5}
    for op in (step, rollback, finalize):
        assert op._BaseOperator__instantiated  # type: ignore[attr-defined]


def test_task_arguments_win_over_default_args(merges: list[int]) -> None:
    with DAG("kubernaut_build", schedule=None, default_args={"retries": 4, "retry_delay": timedelta(1)}):
        step = KubernetesActionOperator(
            task_id="look", spec=SPEC, parameters={}, upstream_steps=[], retries=0
        )
    assert (step.retries, step.retry_delay) == (0, timedelta(1))


def test_positional_arguments_are_refused_as_airflow_does() -> None:
    with pytest.raises(TypeError, match="keyword arguments"):
        KubernautRollbackOperator("rollback", template="t")  # type: ignore[misc]
