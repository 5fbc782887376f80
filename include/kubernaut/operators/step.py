"""The step operators. Thin: gather the run's inputs from Airflow, call ``run_step``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from kubernaut.actions.base import PreconditionFailed
from kubernaut.operators.approval import approval_gates, rejected_gates
from kubernaut.operators.recorder import HistoryRecorder, NullRecorder, StepRecorder
from kubernaut.operators.run_context import RunContext
from kubernaut.operators.runner import StepInputError, StepSpec, run_step


class KubernautStepOperator(BaseOperator):
    """Runs one template step. Parameters are rendered by kubernaut's sandboxed Jinja,
    not by Airflow's templating, so no ``template_fields`` here on purpose."""

    action_kind: ClassVar[str] = ""
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        spec: StepSpec,
        resolve_params: Callable[[dict[str, Any] | None], dict[str, Any]],
        upstream_steps: list[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.resolve_params = resolve_params
        self.upstream_steps = list(upstream_steps)

    def execute(self, context: Any) -> dict[str, Any]:
        if approval_gates(context["dag"]):
            rejected = rejected_gates(context)
            if rejected:
                # A person declined the remediation: nothing after that answer changes anything.
                raise AirflowSkipException(f"{self.spec.name}: run declined ({', '.join(rejected)} rejected)")
        run = RunContext.open(context, self.spec.template, self.spec.dry_run)
        conf = run.conf
        recorder: StepRecorder = NullRecorder()
        if run.history is not None and run.run_id is not None:
            recorder = HistoryRecorder(
                run.history,
                run.run_id,
                self.spec.name,
                f"{self.spec.action_type}/{self.spec.action_name}",
                rollback_mode=str((self.spec.rollback or {}).get("mode", "undo")),
            )
        try:
            params = self.resolve_params(conf.get("params"))
        except ValueError as exc:
            raise AirflowFailException(f"{self.spec.name}: run parameters: {exc}") from exc
        ti = context["ti"]
        steps = {}
        for name in self.upstream_steps:
            record = ti.xcom_pull(task_ids=name)
            # A skipped step has no record; conditions can test for that with `is defined`.
            if isinstance(record, Mapping):
                steps[name] = record.get("output", {})
        timeout = self.execution_timeout.total_seconds() if self.execution_timeout else 3600.0
        try:
            outcome = run_step(
                self.spec,
                conf=conf,
                params=params,
                steps=steps,
                timeout=timeout,
                logger=self.log,
                recorder=recorder,
                _config=run.config,
            )
        except (StepInputError, PreconditionFailed) as exc:
            # Bad input or a refused pre-check will not get better on retry.
            raise AirflowFailException(str(exc)) from exc
        if outcome.skipped:
            raise AirflowSkipException(f"{self.spec.name}: {outcome.reason}")
        return outcome.record


class KubernetesActionOperator(KubernautStepOperator):
    action_kind = "kubernetes"
    ui_color = "#dbe8ff"


class MonitoringActionOperator(KubernautStepOperator):
    action_kind = "monitoring"
    ui_color = "#e3f6e3"


class CustomActionOperator(KubernautStepOperator):
    action_kind = "custom"
    ui_color = "#fdf0d5"


_OPERATORS: dict[str, type[KubernautStepOperator]] = {
    op.action_kind: op for op in (KubernetesActionOperator, MonitoringActionOperator, CustomActionOperator)
}


def operator_for(kind: str) -> type[KubernautStepOperator]:
    return _OPERATORS[kind]
