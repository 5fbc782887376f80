"""``collect_diagnostics``: read-only facts about one object (its state, events, pod logs)."""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import Field, model_validator

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionParams,
    ActionResult,
)
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName

DiagnosableKind = Literal[
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "Node",
    "Service",
    "PersistentVolumeClaim",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "CronJob",
]
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


class CollectDiagnosticsParams(ActionParams):
    namespace: NamespaceName | None = Field(default=None, description="Required except for a Node")
    kind: DiagnosableKind
    name: ObjectName
    tail_lines: int = Field(default=20, ge=1, le=200, description="Log lines per container")
    max_events: int = Field(default=50, ge=1, le=200, description="Newest events kept")
    max_pods: int = Field(default=5, ge=1, le=20, description="Pods whose logs are read (not-ready first)")

    @model_validator(mode="after")
    def _namespace(self) -> CollectDiagnosticsParams:
        if self.kind != "Node" and self.namespace is None:
            raise ValueError(f"a {self.kind} needs a namespace")
        return self


@register
class CollectDiagnostics(Action[CollectDiagnosticsParams]):
    kind = "kubernetes"
    name = "collect_diagnostics"
    Params = CollectDiagnosticsParams
    summary = (
        "Gather an object's events, a describe-like status and its pods' last log lines (bounded output)."
    )

    def run(self, ctx: ActionContext, params: CollectDiagnosticsParams) -> ActionResult:
        from kubernaut.kube import diagnostics
        from kubernaut.kube.objects import read_object

        namespace = None if params.kind == "Node" else params.namespace
        obj = read_object(ctx.api_client, params.kind, namespace, params.name)
        events, total = diagnostics.object_events(ctx, params.kind, namespace, params.name, params.max_events)
        logs = diagnostics.LogCollector(ctx, params.tail_lines)
        output: dict[str, Any] = {
            "object": {"kind": params.kind, "namespace": namespace, "name": params.name},
            "events": events,
            "events_total": total,
        }
        if params.kind == "Node":
            output["status"] = diagnostics.node_status(obj)
            output["pods"] = diagnostics.pods_on_node(ctx, params.name, 20)
            logs.notes.append("logs are per pod: collect the diagnostics of a pod listed here")
        else:
            assert namespace is not None
            pods = self._pods(ctx, namespace, params, obj)
            output["status"] = self._status(ctx, namespace, params, obj)
            output["pods"] = [diagnostics.pod_details(p) for p in pods]
            for pod in pods:
                logs.collect(pod)
        output.update(logs=logs.logs, notes=logs.notes, truncated=logs.truncated)
        return ActionResult(output=output)

    @staticmethod
    def _pods(
        ctx: ActionContext, namespace: str, params: CollectDiagnosticsParams, obj: dict[str, Any]
    ) -> list[Any]:
        from kubernaut.kube import diagnostics
        from kubernaut.kube.clients import core
        from kubernaut.kube.errors import api_errors

        if params.kind == "Pod":
            with api_errors(f"pod {namespace}/{params.name}"):
                return [core(ctx).read_namespaced_pod(params.name, namespace)]
        if params.kind in (*WORKLOADS, "ReplicaSet", "Job"):
            return diagnostics.selected_pods(ctx, namespace, obj, params.max_pods)
        return []

    @staticmethod
    def _status(
        ctx: ActionContext, namespace: str, params: CollectDiagnosticsParams, obj: dict[str, Any]
    ) -> dict[str, Any]:
        from kubernaut.kube import diagnostics
        from kubernaut.kube.workloads import WorkloadKind, workload_status

        if params.kind == "Pod":
            return {
                "phase": (obj.get("status") or {}).get("phase"),
                "conditions": diagnostics.conditions(obj),
            }
        if params.kind in WORKLOADS:
            containers = obj["spec"]["template"]["spec"].get("containers") or []
            return {
                **workload_status(ctx, cast(WorkloadKind, params.kind), namespace, params.name),
                "images": {c["name"]: c.get("image") for c in containers},
                "conditions": diagnostics.conditions(obj),
            }
        return diagnostics.generic_status(obj)


__all__ = ["CollectDiagnostics"]
