"""A private action registry with small test actions, so these tests do not depend on
the built-in actions (written separately)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult
from kubernaut.actions.registry import ActionRegistry
from kubernaut.durations import Duration

SEED = """\
name: pod-crash-recovery
description: Automated recovery workflow for pod crash scenarios
alert_types: [PodCrashLoop, PodFailed, PodRestart]
steps:
  - name: assess-pod-state
    action: {type: kubernetes, action: get_pod_status,
             parameters: {namespace: "{{ alert.namespace }}", pod: "{{ alert.resource }}"}}
  - name: restart-pod
    action: {type: kubernetes, action: restart_pod,
             parameters: {namespace: "{{ alert.namespace }}", pod: "{{ alert.resource }}"}}
    depends_on: [assess-pod-state]
    rollback: {action: rollback_pod_restart}
  - name: validate-recovery
    action: {type: monitoring, action: validate_pod_health,
             parameters: {namespace: "{{ alert.namespace }}", pod: "{{ alert.resource }}", wait_timeout: 5m}}
    depends_on: [restart-pod]
"""


class PodParams(ActionParams):
    namespace: str
    pod: str


class HealthParams(PodParams):
    wait_timeout: Duration = Field(default=timedelta(minutes=5))


class ScaleParams(ActionParams):
    namespace: str
    deployment: str
    replicas: int = Field(ge=0)


def make_registry() -> ActionRegistry:
    reg = ActionRegistry(builtin_modules=())

    def action(kind: Any, name: str, params: type[ActionParams], *, undo: bool = False) -> None:
        def run(self: Action[Any], ctx: ActionContext, p: Any) -> ActionResult:
            return ActionResult()

        body: dict[str, Any] = {"kind": kind, "name": name, "Params": params, "run": run}
        if undo:
            body["undo"] = lambda self, ctx, p, record: {}
            body["mutating"] = True
        reg.register(type(name.title().replace("_", ""), (Action,), body))

    action("kubernetes", "get_pod_status", PodParams)
    action("kubernetes", "restart_pod", PodParams, undo=True)
    action("kubernetes", "rollback_pod_restart", PodParams)
    action("kubernetes", "scale_deployment", ScaleParams, undo=True)
    action("monitoring", "validate_pod_health", HealthParams)
    return reg


@pytest.fixture
def registry() -> ActionRegistry:
    return make_registry()


WriteTemplate = Callable[..., Path]


@pytest.fixture
def write(tmp_path: Path) -> WriteTemplate:
    """write(text, name="t.yaml") -> path of a file holding the dedented text."""

    def _write(text: str, name: str = "t.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return _write
