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


# -- __setattr__: BaseOperator's, with the converter lookup done once per class ---------------
# Airflow's BaseOperator.__setattr__ as KubernautOperator.__setattr__ copies it. If Airflow
# changes it, this fails: copy the change into kubernaut.operators.base, then update this.
AIRFLOW_SETATTR = """\
    def __setattr__(self: BaseOperator, key: str, value: Any):
        if converter := getattr(self, f"_convert_{key}", None):
            value = converter(value)
        super().__setattr__(key, value)
        if self.__from_mapped or self._lock_for_execution:
            return  # Skip any custom behavior for validation and during execute.
        if key in self.__init_kwargs:
            self.__init_kwargs[key] = value
        if self.__instantiated and key in self.template_fields:
            # Resolve upstreams set by assigning an XComArg after initializing
            # an operator, example:
            #   op = BashOperator()
            #   op.bash_command = "sleep 1"
            self._set_xcomargs_dependency(key, value)
"""


def test_airflow_setattr_is_the_one_copied() -> None:
    import inspect

    assert inspect.getsource(airflow_operator.BaseOperator.__setattr__) == AIRFLOW_SETATTR


class _AirflowSetattrRollback(KubernautRollbackOperator):
    __setattr__ = airflow_operator.BaseOperator.__setattr__  # type: ignore[assignment]


class _AirflowSetattrFinalize(KubernautFinalizeOperator):
    __setattr__ = airflow_operator.BaseOperator.__setattr__  # type: ignore[assignment]


class _AirflowSetattrStep(KubernetesActionOperator):
    __setattr__ = airflow_operator.BaseOperator.__setattr__  # type: ignore[assignment]


def _state(op: Any) -> dict[str, str]:
    """What an operator holds, comparable across two builds (the DAG by its id, objects
    without their addresses)."""
    import re

    out = {}
    for key, value in vars(op).items():
        out[key] = value.dag_id if isinstance(value, DAG) else re.sub(r" at 0x[0-9a-f]+", "", repr(value))
    return out


@pytest.mark.parametrize(
    ("ours", "airflows", "kwargs"),
    [
        (
            KubernetesActionOperator,
            _AirflowSetattrStep,
            {
                "spec": SPEC,
                "parameters": {},
                "upstream_steps": ["a"],
                "execution_timeout": timedelta(seconds=90),
            },
        ),
        (KubernautRollbackOperator, _AirflowSetattrRollback, {"template": "t", "trigger_rule": "all_done"}),
        (
            KubernautFinalizeOperator,
            _AirflowSetattrFinalize,
            {"template": "t", "assessment": {"after": 1.0}, "retries": "2", "retry_delay": 7},
        ),
    ],
)
def test_setattr_builds_what_airflows_builds(ours: type, airflows: type, kwargs: dict[str, Any]) -> None:
    built = []
    for cls in (ours, airflows):
        with DAG("kubernaut_setattr", schedule=None, default_args={"owner": "sre", "retries": 4}):
            op = cls(task_id="t", doc_md="d", **kwargs)
            # After construction too: converters (str -> int, seconds -> timedelta, the DAG) run.
            op.retries = "3"
            op.retry_delay = 12
            op.max_retry_delay = 60
            op.owner = "platform"
        built.append(op)
    mine, theirs = (_state(op) for op in built)
    assert mine == theirs
    assert built[0].retries == 3 and built[0].retry_delay == timedelta(seconds=12)
    assert built[0]._BaseOperator__init_kwargs["retries"] == 3  # type: ignore[attr-defined]
