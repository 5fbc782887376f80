"""Built-in monitoring actions: health checks that wait, bounded by their own timeout."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kubernetes import client
from pydantic import Field

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult
from kubernaut.actions.kubernetes import wait_deployment_ready
from kubernaut.actions.registry import register
from kubernaut.durations import Duration
from kubernaut.kube.errors import api_errors
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.kube.pods import Owner, controller_of, guess_replicaset_name, is_ready, owner_pods, pod_summary
from kubernaut.kube.waiting import wait_for


class PodHealthParams(ActionParams):
    namespace: NamespaceName
    pod: ObjectName
    wait_timeout: Duration = Field(default=timedelta(minutes=2), description="How long to wait for Ready")


@register
class ValidatePodHealth(Action[PodHealthParams]):
    kind = "monitoring"
    name = "validate_pod_health"
    Params = PodHealthParams
    summary = "Wait until the pod, or its replacement from the same owner, is Ready."

    def run(self, ctx: ActionContext, params: PodHealthParams) -> ActionResult:
        core, apps = client.CoreV1Api(ctx.api_client), client.AppsV1Api(ctx.api_client)
        owner = self._owner(core, params)

        def check() -> tuple[bool, dict[str, Any]]:
            with api_errors(f"pod {params.namespace}/{params.pod}"):
                pods = core.list_namespaced_pod(
                    params.namespace, field_selector=f"metadata.name={params.pod}"
                ).items
            same = [p for p in pods if p.metadata.deletion_timestamp is None]
            if same and is_ready(same[0]):
                return True, {"pod": pod_summary(same[0]), "replacement": False}
            if owner is not None:
                for pod in owner_pods(core, apps, params.namespace, owner):
                    if pod.metadata.name != params.pod and is_ready(pod):
                        return True, {"pod": pod_summary(pod), "replacement": True}
            last = pod_summary(same[0]) if same else {"name": params.pod, "exists": False}
            return False, {"pod": last}

        seen = wait_for(
            ctx,
            check,
            what=f"pod {params.namespace}/{params.pod} (or its replacement) Ready",
            timeout=params.wait_timeout.total_seconds(),
        )
        return ActionResult(output={"healthy": True, **seen})

    @staticmethod
    def _owner(core: client.CoreV1Api, params: PodHealthParams) -> Owner | None:
        try:
            with api_errors(f"pod {params.namespace}/{params.pod}"):
                return controller_of(core.read_namespaced_pod(params.pod, params.namespace).metadata)
        except Exception:
            # The pod may already be gone (restarted): infer its ReplicaSet from the name.
            rs = guess_replicaset_name(params.pod)
            return Owner("ReplicaSet", rs, "") if rs else None


class DeploymentReadyParams(ActionParams):
    namespace: NamespaceName
    deployment: ObjectName
    wait_timeout: Duration = Field(
        default=timedelta(minutes=5), description="How long to wait for the rollout"
    )


@register
class ValidateDeploymentReady(Action[DeploymentReadyParams]):
    kind = "monitoring"
    name = "validate_deployment_ready"
    Params = DeploymentReadyParams
    summary = "Wait until a deployment's rollout is complete and all its pods are Ready."

    def run(self, ctx: ActionContext, params: DeploymentReadyParams) -> ActionResult:
        status = wait_deployment_ready(
            ctx, params.namespace, params.deployment, timeout=params.wait_timeout.total_seconds()
        )
        return ActionResult(output={"healthy": True, **status})
