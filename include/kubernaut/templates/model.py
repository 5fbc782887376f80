"""The remediation template format as pydantic models (unknown fields are errors).

Only structure lives here. Checks that need the action registry or look across steps
(dependencies, Jinja references) are in ``checks.py`` so every error can be reported
with its own field path instead of one model-level failure.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from kubernaut.actions.base import ACTION_KINDS, ActionKind
from kubernaut.durations import Duration, parse_duration
from kubernaut.templates.matchers import MatcherField
from kubernaut.templates.names import DAG_ID_PREFIX as DAG_ID_PREFIX  # where it is defined now
from kubernaut.templates.names import MAX_NAME, dag_id_of
from kubernaut.templates.names import NAME_PATTERN as NAME_PATTERN

if TYPE_CHECKING:
    from pathlib import Path

    from kubernaut.actions.registry import ActionRegistry

DagName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=MAX_NAME)]
ParameterType = Literal["string", "integer", "number", "boolean", "duration", "list", "object"]
# DAGs kubernaut builds besides the templates' (kubernaut_assessment: the effectiveness runs;
# kubernaut_maintenance: the history prune, dags/kubernaut_maintenance.py)
RESERVED_NAMES = frozenset({"assessment", "maintenance"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Conditions = Annotated[
    list[str],
    BeforeValidator(_as_list),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": "Jinja expressions over alert, params and steps; "
            "all must hold or the step is skipped",
        }
    ),
]


class AlertMatcher(_Strict):
    """An alert name plus optional label matchers; a plain string means just the name."""

    alertname: str = Field(min_length=1)
    matchers: list[MatcherField] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"alertname": value} if isinstance(value, str) else value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [{"type": "string", "minLength": 1}, handler(core_schema)]}

    def matches(self, labels: dict[str, str]) -> bool:
        return labels.get("alertname") == self.alertname and all(m.matches(labels) for m in self.matchers)


class Parameter(_Strict):
    type: ParameterType = "string"
    default: Any = None
    description: str = ""
    required: bool = False

    @field_validator("default")
    @classmethod
    def _check_default(cls, value: Any, info: ValidationInfo) -> Any:
        # A field validator (not a model one) so the error's path, and so its line and
        # column, is the `default` value itself. `type` is declared first: it is in
        # info.data unless it is invalid itself (then that is the error to report).
        kind = info.data.get("type")
        if value is not None and kind is not None:
            coerce_parameter(kind, value)  # raises ValueError naming the type
        return value

    @model_validator(mode="after")
    def _check_required(self) -> Parameter:
        if self.required and self.default is not None:
            raise ValueError("a parameter with a default cannot be required: drop `required` or `default`")
        return self

    def coerce(self, value: Any) -> Any:
        """Check ``value`` against the declared type; durations keep their text form."""
        return coerce_parameter(self.type, value)


def coerce_parameter(kind: ParameterType, value: Any) -> Any:
    """``value`` checked against a declared parameter type (ValueError naming the type)."""
    if kind == "duration":
        parse_duration(value)  # rendered back into templates, so keep '5m' rather than a timedelta
        return value
    try:
        return _PARAM_ADAPTERS[kind].validate_python(value)
    except ValidationError:
        raise ValueError(f"expected a value of type {kind}, got {value!r}") from None


_PARAM_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "string": TypeAdapter(str),
    "integer": TypeAdapter(int),
    "number": TypeAdapter(float),
    "boolean": TypeAdapter(bool),
    "list": TypeAdapter(list[Any]),
    "object": TypeAdapter(dict[str, Any]),
}


class Configuration(_Strict):
    dry_run: bool = False
    max_active_runs: int = Field(default=1, ge=1)
    timeout: Duration = timedelta(minutes=10)
    retries: int = Field(default=0, ge=0)
    retry_delay: Duration = timedelta(seconds=30)
    retry_exponential_backoff: bool = False
    max_retry_delay: Duration = timedelta(minutes=10)
    cooldown: Duration = timedelta(minutes=15)
    kubernetes_conn_id: str = "kubernetes_default"


def _check_kind(value: Any) -> Any:
    if isinstance(value, str) and value not in ACTION_KINDS:
        close = difflib.get_close_matches(value, ACTION_KINDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown action type {value!r}{hint} (expected one of {', '.join(ACTION_KINDS)})")
    return value


Kind = Annotated[ActionKind, BeforeValidator(_check_kind)]


class StepAction(_Strict):
    type: Kind
    action: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)


class Rollback(_Strict):
    """Compensating action; ``type`` defaults to the step's, ``parameters`` to the step's."""

    type: Kind | None = None
    action: str = Field(min_length=1)
    parameters: dict[str, Any] | None = None


@dataclass(frozen=True)
class ResolvedRollback:
    """``use_undo``: call the step action's own ``undo`` with its recorded prior state."""

    action: StepAction
    use_undo: bool


class Step(_Strict):
    """One task. Unset retry/timeout fields fall back to ``Configuration`` via ``*_for``."""

    name: DagName
    description: str = ""
    action: StepAction
    depends_on: list[str] | None = None
    parallel: bool = False
    conditions: Conditions = Field(default_factory=list)
    timeout: Duration | None = None
    retries: int | None = Field(default=None, ge=0)
    retry_delay: Duration | None = None
    retry_exponential_backoff: bool | None = None
    max_retry_delay: Duration | None = None
    rollback: Rollback | Literal["none"] | None = None
    approval: Literal["required", "none"] = "none"
    approval_timeout: Duration | None = Field(
        default=None,
        description="How long the approval waits for a person (default: the step timeout); "
        "no answer in time fails the run and rolls back its changes",
    )
    on_reject: Literal["rollback", "keep"] = Field(
        default="rollback",
        description="When a person rejects the step: roll back the changes made before the gate, "
        "or keep them. Either way the run ends `declined` and no later step runs",
    )

    @model_validator(mode="after")
    def _approval_fields(self) -> Step:
        if self.approval != "required" and not _APPROVAL_DEFAULTS.keys().isdisjoint(self.model_fields_set):
            for name, default in _APPROVAL_DEFAULTS.items():
                # Its default written out (as model_dump does) says nothing: only a value does.
                if name in self.model_fields_set and getattr(self, name) != default:
                    raise ValueError(f"`{name}` needs `approval: required`")
        return self

    def approval_timeout_for(self, config: Configuration) -> timedelta:
        return self.approval_timeout if self.approval_timeout is not None else self.timeout_for(config)

    @field_validator("rollback", mode="before")
    @classmethod
    def _rollback_shape(cls, value: Any) -> Any:
        # Keeps a typo like `rollback: nope` from producing a two-branch union error.
        if isinstance(value, str) and value != "none":
            raise ValueError(f"expected 'none' or a mapping with an `action`, got {value!r}")
        return value

    def timeout_for(self, config: Configuration) -> timedelta:
        return self.timeout if self.timeout is not None else config.timeout

    def retries_for(self, config: Configuration) -> int:
        return self.retries if self.retries is not None else config.retries

    def retry_delay_for(self, config: Configuration) -> timedelta:
        return self.retry_delay if self.retry_delay is not None else config.retry_delay

    def retry_exponential_backoff_for(self, config: Configuration) -> bool:
        if self.retry_exponential_backoff is not None:
            return self.retry_exponential_backoff
        return config.retry_exponential_backoff

    def max_retry_delay_for(self, config: Configuration) -> timedelta:
        return self.max_retry_delay if self.max_retry_delay is not None else config.max_retry_delay

    def resolved_rollback(self, registry: ActionRegistry | None = None) -> ResolvedRollback | None:
        """The compensation to run if a later step fails, or None.

        Omitted ``rollback`` means the action's own undo when it has one.
        """
        if self.rollback == "none":
            return None
        if isinstance(self.rollback, Rollback):
            params = self.rollback.parameters
            action = StepAction(
                type=self.rollback.type or self.action.type,
                action=self.rollback.action,
                parameters=dict(self.action.parameters if params is None else params),
            )
            return ResolvedRollback(action, use_undo=False)
        if registry is None:
            from kubernaut.actions.registry import registry as default_registry

            registry = default_registry
        if registry.get(self.action.type, self.action.action).has_undo():
            return ResolvedRollback(self.action, use_undo=True)
        return None


_APPROVAL_DEFAULTS = {name: Step.model_fields[name].default for name in ("approval_timeout", "on_reject")}


class Metric(_Strict):
    """A PromQL query (one series, or aggregate it) measured when the run starts and after
    the delay; ``better`` says which way is an improvement."""

    query: str = Field(min_length=1, max_length=4000, description="PromQL returning one series")
    better: Literal["lower", "higher"] = Field(description="Which direction of change is an improvement")


class Effectiveness(_Strict):
    """When and how the run is assessed (unset: the configuration's ``effectiveness``)."""

    after: Duration | None = Field(default=None, description="Delay after the run ends (default 10m)")
    window: Duration | None = Field(
        default=None, description="Then watch this long for the alert firing again (default 30m)"
    )
    metrics: list[Metric] = Field(default_factory=list)


class TargetSpec(_Strict):
    """The object a run acts on when the alert's labels name none (a cluster-wide aggregation
    such as KubeCPUOvercommit, a control-plane alert). Rendered by the intake with ``alert``
    and ``params`` (defaults, then the configuration's ``template_parameters``), so the
    decision names it; an alert whose labels name an object keeps that object."""

    kind: str = Field(pattern=r"^[A-Z][A-Za-z0-9]{0,62}$", description="e.g. MachineDeployment, Cluster")
    namespace: str = Field(default="", max_length=500, description="Empty for a cluster-scoped object")
    name: str = Field(min_length=1, max_length=500)

    @field_validator("namespace", "name")
    @classmethod
    def _compiles(cls, value: str) -> str:
        from kubernaut.rendering import TemplateSyntaxError, check_syntax

        try:
            check_syntax(value)
        except TemplateSyntaxError as exc:
            raise ValueError(f"invalid Jinja: {exc.message}") from None
        return value


class Template(_Strict):
    name: DagName
    description: str = ""
    alert_types: list[AlertMatcher] = Field(min_length=1)
    matchers: list[MatcherField] = Field(
        default_factory=list, description="Label matchers every alert must satisfy (all alert types)"
    )
    tags: list[str] = Field(default_factory=list)
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    configuration: Configuration = Field(default_factory=Configuration)
    effectiveness: Effectiveness = Field(default_factory=Effectiveness)
    priority: int = Field(
        default=50,
        ge=0,
        le=100,
        description="Prior belief (0-100) that this template fixes its alerts, before any run is "
        "measured; among equally specific templates the intake ranks by measured effectiveness "
        "starting from it (docs/choice.md)",
    )
    fallback: DagName | None = Field(
        default=None,
        description="Template launched for the same alert occurrence when a run of this one rolls "
        "back or is assessed ineffective; 'none': escalate to a person at once; unset: the "
        "next-ranked template that answers the alert, if any (docs/choice.md)",
    )
    target: TargetSpec | None = Field(
        default=None,
        description="What the run acts on when the alert's labels name no object (rendered with "
        "`alert` and `params`); unset: such alerts are decided no_target",
    )
    steps: list[Step] = Field(min_length=1)

    # Set by the loader (validation context "source"); never read from the YAML.
    _source: Path | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_NAMES:  # its DAG id is one of kubernaut's own DAGs
            raise ValueError(f"'{name}' is reserved: kubernaut_{name} is kubernaut's own DAG")
        return name

    @model_validator(mode="after")
    def _remember_source(self, info: ValidationInfo) -> Template:
        if isinstance(info.context, dict):
            self._source = info.context.get("source")
        return self

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def dag_id(self) -> str:
        return dag_id_of(self.name)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"template {self.name!r} has no step {name!r}")

    def effective_dependencies(self) -> dict[str, list[str]]:
        return effective_dependencies(self.steps)

    def matches_alert(self, labels: dict[str, str]) -> bool:
        """True if one alert type matches and all template-wide matchers hold."""
        return any(a.matches(labels) for a in self.alert_types) and all(
            m.matches(labels) for m in self.matchers
        )

    def resolve_params(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults merged with ``overrides``; raise ParameterError listing every problem."""
        return resolve_parameters(self.parameters, overrides)


def resolve_parameters(
    parameters: Mapping[str, Parameter], overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Declared ``parameters``' defaults merged with ``overrides``; raise ParameterError listing
    every problem (the step operators resolve a run's parameters with this, too)."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    overrides = overrides or {}
    for key in overrides:
        if key not in parameters:
            close = difflib.get_close_matches(key, list(parameters), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"unknown parameter {key!r}{hint}")
    for name, spec in parameters.items():
        if name in overrides:
            try:
                values[name] = spec.coerce(overrides[name])
            except ValueError as exc:
                problems.append(f"parameter {name!r}: {exc}")
        elif spec.required:
            problems.append(f"parameter {name!r} is required")
        else:
            values[name] = spec.default
    if problems:
        raise ParameterError(problems)
    return values


class ParameterError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def effective_dependencies(steps: list[Step]) -> dict[str, list[str]]:
    """Upstream step names per step, in step order.

    No ``depends_on``: the step follows the previous one; after a group of
    ``parallel`` steps it waits for the whole group. ``parallel: true`` runs the step
    beside the previous one (same upstream). ``depends_on: []`` makes a root.
    """
    deps: dict[str, list[str]] = {}
    group: list[str] = []  # the previous step and the steps running beside it
    previous: list[str] = []  # the previous step's upstream
    for step in steps:
        if step.depends_on is not None:
            mine = list(step.depends_on)
            group = [step.name]
        elif step.parallel:
            mine = list(previous)
            group = [*group, step.name]
        else:
            mine = list(group)
            group = [step.name]
        deps[step.name] = mine
        previous = mine
    return deps
