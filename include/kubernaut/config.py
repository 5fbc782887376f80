"""Project configuration: the safety policy, the script allow-list, service connections.

Sources, the first that exists wins:

1. the YAML file named by ``KUBERNAUT_CONFIG``;
2. the Airflow Variable ``kubernaut_config`` (YAML or JSON), looked up in the secrets
   backends Airflow consults in this process: in a task, ``AIRFLOW_VAR_KUBERNAUT_CONFIG``
   then the metadata DB through the Execution API; in the api-server (the intake plugin),
   the environment then the metadata DB; elsewhere (the CLI, ``kubernaut serve``) only the
   environment. A configured custom secrets backend comes first everywhere;
3. the defaults, only when there is no configuration at all: ``KUBERNAUT_CONFIG`` unset and
   every backend consulted answered "no such Variable".

Fails closed: a configuration that exists but cannot be read (missing file, store
unreachable, access denied), is not YAML/JSON, or has an invalid field raises
``ConfigError`` naming the source, never a silent fall back to the defaults (which would
drop e.g. ``require_label``). An empty document sets nothing: all defaults.
"""

from __future__ import annotations

import functools
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kubernaut.durations import Duration

CONFIG_ENV = "KUBERNAUT_CONFIG"
CONFIG_VARIABLE = "kubernaut_config"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyConfig(_Strict):
    """Checked before every mutating step, dry-run included."""

    protected_namespaces: list[str] = Field(
        default_factory=lambda: ["kube-system", "kube-public", "kube-node-lease"],
        description="Never mutated",
    )
    require_label: str | None = Field(
        default=None,
        description="Opt-in scope, e.g. 'kubernaut.io/managed=true': only labelled objects change",
    )
    max_replicas: int = Field(default=50, ge=0, description="Upper bound for any replica count set")
    max_resource_factor: float = Field(default=4.0, gt=1.0, description="Max factor for a resource increase")
    max_nodes_unschedulable: int = Field(default=1, ge=0, description="Max nodes cordoned/drained at once")
    node_cleanup_paths: list[str] = Field(
        default_factory=lambda: ["/var/log", "/var/tmp", "/tmp"],
        description="Host directories cleanup_node_disk may clean (it mounts only these, or below them)",
    )
    node_cleanup_image: str = Field(
        default="busybox:1.36", description="Image of cleanup_node_disk's Job (needs `find`)"
    )


class BackoffConfig(_Strict):
    """Exponential backoff between repeat runs for one target (intake decision ``backoff``)."""

    base: Duration = Field(default=timedelta(minutes=5), description="Wait after the first run (0: off)")
    max: Duration = Field(default=timedelta(hours=2), description="Longest wait")
    window: Duration = Field(default=timedelta(hours=6), description="Runs started this recently count")

    @model_validator(mode="after")
    def _ordered(self) -> BackoffConfig:
        if self.base > self.max:
            raise ValueError(f"base ({self.base}) must not exceed max ({self.max})")
        if self.base and self.window <= timedelta(0):
            raise ValueError("window must be positive when backoff is on")
        return self


class IneffectiveChainConfig(_Strict):
    """N failed / rolled back / ineffective runs for one alert and target within ``window``:
    ``blocked`` until a person runs ``kubernaut unblock``."""

    runs: int = Field(default=3, ge=0, le=1000, description="How many such runs block (0: off)")
    window: Duration = Field(default=timedelta(hours=24), description="How far back runs count")


class BlockingConfig(_Strict):
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)
    ineffective_chain: IneffectiveChainConfig = Field(default_factory=IneffectiveChainConfig)
    resolved_check: bool = Field(
        default=True,
        description="Before a run's first change, ask Alertmanager whether its alert still fires; "
        "if not, the run ends `not_needed` without changing anything",
    )


DEFAULT_NODE_ALERTS = [
    "KubeNodeNotReady",
    "KubeNodeUnreachable",
    "NodeNotReady",
    "KubeNodePressure",
    "NodeFilesystem*",
]


class SuppressionConfig(_Strict):
    """Symptom suppression: alerts about pods on a node with an active node-level alert, or
    whose owner is being remediated, are decided ``suppressed``."""

    enabled: bool = True
    node_alerts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_NODE_ALERTS),
        description="Alert names (* and ? patterns, e.g. 'NodeFilesystem*') marking a node as the root cause",
    )
    recent: Duration = Field(
        default=timedelta(minutes=30), description="Node alerts the intake saw this recently count"
    )

    @field_validator("node_alerts")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not re.fullmatch(r"[A-Za-z0-9_:*?-]+", pattern or ""):
                raise ValueError(f"{pattern!r} is not an alert name or a pattern with * and ?")
        return value


class EffectivenessConfig(_Strict):
    """Delayed assessment of every run (docs/effectiveness.md); a template's
    ``effectiveness:`` overrides ``after`` and ``window``."""

    after: Duration = Field(default=timedelta(minutes=10), description="Delay after the run ends")
    window: Duration = Field(
        default=timedelta(minutes=30), description="Then watch this long for the alert firing again"
    )
    threshold: float = Field(default=0.7, ge=0.0, le=1.0, description="Score from which a run is effective")


class ChoiceConfig(_Strict):
    """Which of several equally specific templates answers an alert (docs/choice.md): a Beta
    posterior of each one's effectiveness, Thompson-sampled with a seed per alert occurrence."""

    seed: int = Field(default=0, description="Mixed with each alert occurrence's fingerprint and start")
    window: Duration = Field(default=timedelta(days=30), description="Runs started this recently count")
    namespace_runs: int = Field(
        default=5, ge=1, description="Runs in the alert's namespace from which that namespace's figures count"
    )
    prior_strength: float = Field(
        default=2.0, gt=0.0, description="How many runs a template's `priority` is worth"
    )
    fallback: bool = Field(
        default=True,
        description="Launch a run's fallback (or the next-ranked template) for the same alert occurrence "
        "when it rolls back or is assessed ineffective; off: escalate at once",
    )


EscalationOutcome = Literal["rollback_failed", "partially_rolled_back", "declined", "blocked"]
ESCALATION_OUTCOMES: tuple[EscalationOutcome, ...] = (
    "rollback_failed",
    "partially_rolled_back",
    "declined",
    "blocked",
)
_IMPORT_PATH = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+"


class NotifierConfig(_Strict):
    """One Airflow ``BaseNotifier`` (kubernaut.notifiers): its class and keyword arguments.
    Secrets belong in Airflow connections the notifier reads, not in these arguments."""

    notifier: str = Field(
        pattern=f"^{_IMPORT_PATH}$",
        description="Import path of a BaseNotifier subclass, e.g. "
        "'kubernaut.notifiers.KubernautWebhookNotifier' or a provider's (Slack, SMTP ...)",
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Passed to the notifier's constructor")


class EscalationConfig(_Strict):
    """Escalations (a person must look) go out through Airflow notifiers, once per run (or
    alert occurrence) and outcome, with a link to the remediation page (docs/operations.md)."""

    conn_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,250}$",
        description="Shortcut: KubernautWebhookNotifier posting JSON through this HTTP connection",
    )
    notifiers: list[NotifierConfig] = Field(default_factory=list, description="Further notifiers")
    outcomes: list[EscalationOutcome] = Field(
        default_factory=lambda: list(ESCALATION_OUTCOMES), description="Which outcomes escalate"
    )


RETENTION_TABLES = ("runs", "steps", "assessments", "escalations", "decisions", "unblocks")


class RetentionConfig(_Strict):
    """How long the history keeps each kind of row (``kubernaut history prune``, the
    ``kubernaut_maintenance`` DAG); 0 or null: for ever. A run's steps, undo journal, outcomes,
    assessment and escalations go with it; ``steps``/``assessments``/``escalations`` may drop
    them earlier. A run still in flight or awaiting its assessment is never pruned."""

    runs: Duration | None = Field(default=timedelta(days=90), description="Finished runs, with their rows")
    steps: Duration | None = Field(
        default=timedelta(days=90), description="Steps and undo journal of finished runs"
    )
    assessments: Duration | None = Field(default=timedelta(days=90), description="Effectiveness assessments")
    escalations: Duration | None = Field(default=timedelta(days=90), description="Escalations sent")
    decisions: Duration | None = Field(default=timedelta(days=30), description="Intake alert decisions")
    unblocks: Duration | None = Field(default=timedelta(days=365), description="Who cleared a block (audit)")
    batch_size: int = Field(default=5000, ge=1, le=100000, description="Rows per delete (short transactions)")

    def period(self, table: str) -> timedelta | None:
        """The table's retention; None: keep for ever."""
        value: timedelta | None = getattr(self, table)
        return value if value else None


class KubernautConfig(_Strict):
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    choice: ChoiceConfig = Field(default_factory=ChoiceConfig)
    effectiveness: EffectivenessConfig = Field(default_factory=EffectivenessConfig)
    blocking: BlockingConfig = Field(default_factory=BlockingConfig)
    suppression: SuppressionConfig = Field(default_factory=SuppressionConfig)
    escalation: EscalationConfig = Field(default_factory=EscalationConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    scripts: dict[str, list[str]] = Field(
        default_factory=dict, description="run_script allow-list: name -> argv (never from alert data)"
    )
    prometheus_conn_id: str = "prometheus_default"
    alertmanager_conn_id: str = "alertmanager_default"
    notify_conn_id: str | None = Field(default=None, description="Webhook connection for `notify`")
    history_conn_id: str = "kubernaut_history"
    # Multi-cluster (kubernaut.clusters, docs/multi-cluster.md); no clusters: single-cluster mode.
    clusters: dict[str, str] = Field(
        default_factory=dict, description="Cluster name (the alert label's value) -> Kubernetes connection id"
    )
    cluster_label: str = Field(default="cluster", description="The alert label that names the cluster")
    default_cluster: str | None = Field(
        default=None, description="Cluster for an alert without that label (unset: decided no_cluster)"
    )
    # Parameters a template's runs get from the installation, not from the alert (e.g. the node
    # group cluster-capacity grows: a cluster-wide alert names none); kubernaut.template_params.
    template_parameters: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Template name -> parameters every run of it gets"
    )
    cluster_parameters: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict,
        description="Cluster name -> template name -> parameters, over template_parameters for that cluster",
    )

    @model_validator(mode="after")
    def _clusters(self) -> KubernautConfig:
        from kubernaut.clusters import settings_problems

        problems = settings_problems(self.clusters, self.cluster_label, self.default_cluster)
        problems += [
            f"cluster_parameters: {name!r} is not one of the configured clusters "
            f"({', '.join(sorted(self.clusters)) or 'none: single-cluster mode uses template_parameters'})"
            for name in self.cluster_parameters
            if name not in self.clusters
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _retention(self) -> KubernautConfig:
        """Pruning must not take away what the intake still decides on."""
        needs = {
            "runs": ("choice.window", self.choice.window),
            "assessments": ("choice.window", self.choice.window),
            "unblocks": ("blocking.ineffective_chain.window", self.blocking.ineffective_chain.window),
        }
        for table, (setting, window) in needs.items():
            kept = self.retention.period(table)
            if kept is not None and kept < window:
                raise ValueError(
                    f"retention.{table} ({kept}) is shorter than {setting} ({window}), which reads them"
                )
        return self


class ConfigError(ValueError):
    pass


def parse_config(data: Any, source: str) -> KubernautConfig:
    if data is None:
        data = {}  # an empty document sets nothing
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: invalid kubernaut configuration: expected a mapping of settings, "
            f"got {type(data).__name__}"
        )
    try:
        return KubernautConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source}: invalid kubernaut configuration: {problems}") from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def parse_text(text: str, source: str) -> KubernautConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML/JSON: {_yaml_problem(exc)}") from exc
    return parse_config(data, source)


def _unreadable_file(path: str, exc: Exception) -> ConfigError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ConfigError(f"{CONFIG_ENV}={path}: cannot read the configuration file: {reason}")


@functools.cache
def _from_file(path: str, mtime: float) -> KubernautConfig:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable_file(path, exc) from exc
    return parse_text(text, path)


VARIABLE_SOURCE = f"Airflow Variable {CONFIG_VARIABLE}"


def _from_execution_api() -> str | None:
    """Ask the Execution API (through the task's supervisor) for the Variable. Unlike
    ``Variable.get``, which logs any backend error and then reports "not found", only an
    explicit VARIABLE_NOT_FOUND for a key the metadata DB does not hold means absent here."""
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import (
        ErrorResponse,
        GetVariable,
        GetVariableKeys,
        VariableKeysResult,
        VariableResult,
    )

    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if comms is None:
        raise ConfigError(f"{VARIABLE_SOURCE}: cannot be read: no connection to the task supervisor")
    answer = comms.send(GetVariable(key=CONFIG_VARIABLE))
    if isinstance(answer, ErrorResponse) and answer.error != ErrorType.VARIABLE_NOT_FOUND:
        problem = f"{answer.error.value} {answer.detail}"
        raise ConfigError(f"{VARIABLE_SOURCE}: cannot be read: the Execution API answered {problem}")
    if isinstance(answer, VariableResult) and answer.value is not None:
        return answer.value
    if not isinstance(answer, ErrorResponse | VariableResult):
        raise ConfigError(f"{VARIABLE_SOURCE}: cannot be read: unexpected answer {type(answer).__name__}")
    # Airflow answers "not found" also for a stored value it cannot decrypt (a wrong or
    # rotated Fernet key): the key list tells the two apart.
    keys = comms.send(GetVariableKeys(prefix=CONFIG_VARIABLE))
    if not isinstance(keys, VariableKeysResult):
        raise ConfigError(f"{VARIABLE_SOURCE}: cannot be read: listing Variables answered {keys!r}")
    if CONFIG_VARIABLE in keys.keys:
        raise ConfigError(
            f"{VARIABLE_SOURCE}: exists in the metadata DB but its value cannot be read "
            "(Airflow could not decrypt it: check [core] fernet_key)"
        )
    return None


def read_variable() -> tuple[str | None, str]:
    """The Variable's text and the backend that had it, or ``(None, "")`` when every
    secrets backend of this process answered that it does not exist."""
    try:
        from airflow.sdk.execution_time.secrets import ExecutionAPISecretsBackend
        from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded

        backends = ensure_secrets_backend_loaded()
    except Exception as exc:
        raise ConfigError(f"{VARIABLE_SOURCE}: cannot be read: Airflow's secrets backends: {exc}") from exc
    for backend in backends:
        where = type(backend).__name__
        try:
            if isinstance(backend, ExecutionAPISecretsBackend):
                value = _from_execution_api()
            else:
                value = backend.get_variable(CONFIG_VARIABLE)
        except ConfigError:
            raise
        except Exception as exc:  # unreachable store, denied access, broken backend file ...
            detail = " ".join(str(exc).split())[:500]
            raise ConfigError(
                f"{VARIABLE_SOURCE}: cannot be read from {where}: {type(exc).__name__}: {detail}"
            ) from exc
        if value is not None:
            return str(value), where
    return None, ""


def load_config() -> KubernautConfig:
    """The effective configuration (see the module docstring); ``ConfigError`` when one
    exists but cannot be read or is invalid."""
    path = os.environ.get(CONFIG_ENV)
    if path:
        try:
            mtime = Path(path).stat().st_mtime
        except OSError as exc:
            raise _unreadable_file(path, exc) from exc
        return _from_file(path, mtime)
    raw, backend = read_variable()
    if raw is None:
        return KubernautConfig()
    return parse_text(raw, f"{VARIABLE_SOURCE} (from {backend})")
