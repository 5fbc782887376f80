"""What the step runner is given of one template step: plain data, light to import.

The DAG factory builds it at parse time (and the DAG processor reads it back from the template
cache, kubernaut.templates.cache), so this module imports nothing of the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StepSpec:
    """What the runner needs of a template step (plain data, built by the DAG factory)."""

    template: str
    name: str
    action_type: str
    action_name: str
    parameters: dict[str, Any]
    conditions: list[str] = field(default_factory=list)
    rollback: dict[str, Any] | None = None
    dry_run: bool = False
    kube_conn_id: str = "kubernetes_default"
