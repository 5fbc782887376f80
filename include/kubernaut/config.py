"""Project configuration: the safety policy, the script allow-list, service connections.

Read from the YAML file named by ``KUBERNAUT_CONFIG`` or else the Airflow Variable
``kubernaut_config`` (YAML or JSON), else defaults. Validated when loaded; an error names
the source and the field.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


class KubernautConfig(_Strict):
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    scripts: dict[str, list[str]] = Field(
        default_factory=dict, description="run_script allow-list: name -> argv (never from alert data)"
    )
    prometheus_conn_id: str = "prometheus_default"
    alertmanager_conn_id: str = "alertmanager_default"
    notify_conn_id: str | None = Field(default=None, description="Webhook connection for `notify`")
    history_conn_id: str = "kubernaut_history"


class ConfigError(ValueError):
    pass


def parse_config(data: Any, source: str) -> KubernautConfig:
    try:
        return KubernautConfig.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source}: invalid kubernaut configuration: {problems}") from exc


@functools.cache
def _from_file(path: str, mtime: float) -> KubernautConfig:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_config(data, path)


def load_config() -> KubernautConfig:
    path = os.environ.get(CONFIG_ENV)
    if path:
        return _from_file(path, Path(path).stat().st_mtime)
    try:
        from airflow.sdk import Variable

        raw = Variable.get(CONFIG_VARIABLE, default=None)
    except Exception:  # no Airflow context or DB: defaults
        raw = None
    if raw:
        return parse_config(yaml.safe_load(raw), f"Airflow Variable {CONFIG_VARIABLE}")
    return KubernautConfig()
