"""The step operators. Thin: gather the run's inputs from Airflow, call ``run_step``.

A step that has to wait (a rollout, pod health, Prometheus, Alertmanager ...) defers: the task
process exits and frees its worker slot, the triggerer runs the wait (``StepWaitTrigger``), and
``execute_complete`` finishes the step when it ends, as the cncf-kubernetes operators do."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from kubernaut.operators.base import KubernautOperator
from kubernaut.operators.spec import StepSpec

if TYPE_CHECKING:
    from kubernaut.operators.recorder import StepRecorder
    from kubernaut.operators.run_context import RunContext
    from kubernaut.operators.runner import StepOutcome

# Airflow's own limit on the deferral, a backstop behind the wait's deadline (the trigger
# reports a timeout itself, with what it saw last).
DEFER_GRACE = timedelta(minutes=2)
# Waits poll every second at first, then less often (1.5x per poll), at most this often.
MAX_POLL_INTERVAL = 10.0


class KubernautStepOperator(KubernautOperator):
    """Runs one template step. Parameters are rendered by kubernaut's sandboxed Jinja,
    not by Airflow's templating, so no ``template_fields`` here on purpose.

    Light to import and to build (the DAG processor builds every step of every template at
    every parse): what a step needs to run is imported when it runs (kubernaut.preload
    imports it once in the process that forks the tasks)."""

    action_kind: ClassVar[str] = ""
    ui_color = "#e8f0fe"
    spec: StepSpec
    parameters: Mapping[str, Mapping[str, Any]]
    upstream_steps: list[str]

    def __init__(
        self,
        *,
        spec: StepSpec,
        parameters: Mapping[str, Mapping[str, Any]],
        upstream_steps: list[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Past BaseOperator.__setattr__, whose converters and template-field bookkeeping are for
        # Airflow's own arguments: the DAG processor builds every step of every template.
        init = object.__setattr__
        init(self, "spec", spec)
        # The template's parameter declarations (``Parameter.model_dump()``): plain data, so
        # that the DAG processor reads them back from the template cache without pydantic;
        # one mapping shared by the steps of a template, never modified.
        init(self, "parameters", parameters)
        init(self, "upstream_steps", list(upstream_steps))

    def resolve_params(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The template's parameters: defaults merged with ``overrides`` (``Template.resolve_params``)."""
        from kubernaut.templates.model import Parameter, resolve_parameters

        declared = {name: Parameter.model_validate(p) for name, p in self.parameters.items()}
        return resolve_parameters(declared, overrides)

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from kubernaut.actions.base import PreconditionFailed
        from kubernaut.operators.approval import approval_gates, rejected_gates
        from kubernaut.operators.resolved import not_needed
        from kubernaut.operators.run_context import RunContext
        from kubernaut.operators.runner import StepInputError, run_step
        from kubernaut.template_params import TemplateParameters

        if approval_gates(context["dag"]):
            rejected = rejected_gates(context)
            if rejected:
                # A person declined the remediation: nothing after that answer changes anything.
                raise AirflowSkipException(f"{self.spec.name}: run declined ({', '.join(rejected)} rejected)")
        run = RunContext.open(context, self.spec.template, self.spec.dry_run, self.spec.kube_conn_id)
        spec = self._spec_for(run)
        # Already resolved: before the run's first change, is its alert still firing? (resolved.py)
        resolved = not_needed(run, spec, self.log)
        if resolved:
            raise AirflowSkipException(f"{self.spec.name}: {resolved}")
        conf = run.conf
        recorder = self._recorder(run)
        try:
            # defaults < the configuration's template parameters < the conf's (kubernaut.template_params)
            configured = TemplateParameters.from_config(run.config)
            params = self.resolve_params(
                configured.for_run(self.spec.template, run.cluster.name, conf.get("params"))
            )
        except ValueError as exc:
            raise AirflowFailException(f"{self.spec.name}: run parameters: {exc}") from exc
        ti = context["ti"]
        steps = {}
        for name in self._steps_read():
            record = ti.xcom_pull(task_ids=name)
            # A skipped step has no record; conditions can test for that with `is defined`.
            if isinstance(record, Mapping):
                steps[name] = record.get("output", {})
        timeout = self.execution_timeout.total_seconds() if self.execution_timeout else 3600.0
        try:
            outcome = run_step(
                spec,
                conf=conf,
                params=params,
                steps=steps,
                timeout=timeout,
                logger=self.log,
                recorder=recorder,
                can_defer=True,
                max_poll_interval=MAX_POLL_INTERVAL,
                _config=run.config,
            )
        except (StepInputError, PreconditionFailed) as exc:
            # Bad input or a refused pre-check will not get better on retry.
            raise AirflowFailException(str(exc)) from exc
        if outcome.skipped:
            raise AirflowSkipException(f"{self.spec.name}: {outcome.reason}")
        if outcome.pending:
            self._defer_wait(outcome, spec.kube_conn_id)
        return outcome.record

    def _steps_read(self) -> list[str]:
        """The upstream steps whose records this step's parameters and conditions read: each
        one costs an XCom round trip. All of them unless every use of ``steps`` is a constant
        ``steps['name']`` / ``steps.name`` (kubernaut.rendering.referenced_names)."""
        from kubernaut.rendering import referenced_names

        used = referenced_names("steps", self.spec.parameters, self.spec.conditions)
        if used is None:
            return list(self.upstream_steps)
        return [name for name in self.upstream_steps if name in used]

    def _spec_for(self, run: RunContext) -> StepSpec:
        """The step as this run runs it: on the run's cluster (kubernaut.clusters)."""
        import dataclasses

        if run.kube_conn_id == self.spec.kube_conn_id:
            return self.spec
        return dataclasses.replace(self.spec, kube_conn_id=run.kube_conn_id)

    def _defer_wait(self, outcome: StepOutcome, kube_conn_id: str) -> None:
        from kubernaut.triggers.wait import StepWaitTrigger

        assert outcome.wait is not None
        # The triggerer gets the run's connection with the wait (StepWaitTrigger.serialize).
        trigger = StepWaitTrigger(
            wait=outcome.wait.to_dict(), kube_conn_id=kube_conn_id, resume=outcome.resume
        )
        timeout = timedelta(seconds=outcome.wait.remaining()) + DEFER_GRACE
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timeout)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """The wait ended in the triggerer: judge its outcome, verify and record the step."""
        from airflow.sdk.exceptions import AirflowFailException

        from kubernaut.actions.base import PreconditionFailed
        from kubernaut.operators.run_context import RunContext
        from kubernaut.operators.runner import StepInputError, resume_step

        run = RunContext.open(context, self.spec.template, self.spec.dry_run, self.spec.kube_conn_id)
        try:
            outcome = resume_step(
                self._spec_for(run),
                event or {},
                conf=run.conf,
                logger=self.log,
                recorder=self._recorder(run),
                _config=run.config,
            )
        except (StepInputError, PreconditionFailed) as exc:
            raise AirflowFailException(str(exc)) from exc
        return outcome.record

    def _recorder(self, run: RunContext) -> StepRecorder:
        from kubernaut.operators.recorder import HistoryRecorder, NullRecorder

        if run.history is None or run.run_id is None:
            return NullRecorder()
        return HistoryRecorder(
            run.history,
            run.run_id,
            self.spec.name,
            f"{self.spec.action_type}/{self.spec.action_name}",
            rollback_mode=str((self.spec.rollback or {}).get("mode", "undo")),
        )


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
