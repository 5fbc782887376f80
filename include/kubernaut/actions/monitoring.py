"""Built-in monitoring actions: health checks that wait, bounded by their own timeout."""

from __future__ import annotations

import dataclasses
import datetime
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult, wait_error
from kubernaut.actions.kubernetes.rollouts import WorkloadKind, rollout_wait
from kubernaut.actions.registry import register
from kubernaut.durations import Duration, format_duration
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.waits.spec import WaitOutcome

if TYPE_CHECKING:
    from kubernetes import client

    from kubernaut.kube.pods import Owner

# The watch of validate_no_oom_kills ends with a last look: room for it before the deadline.
OBSERVE_SLACK = 2.0


def _blank_is_none(value: Any) -> Any:
    """A template renders a missing upstream value as '' (``| default('')``): that means unset."""
    return None if isinstance(value, str) and not value.strip() else value


class PodHealthParams(ActionParams):
    namespace: NamespaceName
    pod: ObjectName
    wait_timeout: Duration = Field(default=timedelta(minutes=2), description="How long to wait for health")
    stable_for: Duration = Field(
        default=timedelta(seconds=30),
        description="How long the pod must stay Ready with no container restart (0: Ready once is enough)",
    )
    pod_uid: Annotated[str | None, BeforeValidator(_blank_is_none)] = Field(
        default=None,
        description="uid of the alerting pod when assessed: another pod of that name is a replacement",
    )
    since: Annotated[datetime.datetime | None, BeforeValidator(_blank_is_none)] = Field(
        default=None,
        description="API server time the alerting pod was last seen before it was restarted (the "
        "assessment's observedAt): the owner's pods created from then on are its replacements",
    )

    @model_validator(mode="after")
    def _window_fits(self) -> PodHealthParams:
        if self.stable_for >= self.wait_timeout:
            raise ValueError(
                f"stable_for ({format_duration(self.stable_for)}) must be shorter than "
                f"wait_timeout ({format_duration(self.wait_timeout)})"
            )
        if self.since is not None and self.since.tzinfo is None:
            raise ValueError(f"since {self.since.isoformat()} needs a time zone (e.g. a trailing Z)")
        return self


@register
class ValidatePodHealth(Action[PodHealthParams]):
    """The alerting pod must be Ready and not restarting: Ready continuously for ``stable_for``
    with every container's restartCount unchanged (as ``minReadySeconds`` judges a rollout).

    Only when that pod is gone (deleted, terminating, or replaced under the same name by a
    StatefulSet) do its replacements count: the pods of its owner (a ReplicaSet followed up to
    its Deployment, so a newer ReplicaSet's pods count too) created at or after the moment the
    alerting pod was last seen — by the API server's clock, which stamps creationTimestamp — so
    they cannot be siblings that existed beside it. The pod-crash template restarts the pod in
    the step before this one, so it passes ``since``: its assessment step's ``observedAt``.
    When this step sees the pod itself before it goes, its own later sighting is used. Every
    such pod must be steady and there must be at least one: a Ready sibling never passes for a
    crash-looping pod, and a crash-looping replacement fails even beside Ready pods. Without
    any reference (the pod already gone and no ``since``) every pod of the owner must be steady.
    creationTimestamp has one-second precision, so a sibling created in the very second of the
    sighting counts as a replacement too: the check gets stricter, never laxer.
    """

    kind = "monitoring"
    name = "validate_pod_health"
    Params = PodHealthParams
    summary = (
        "Wait until the pod, or once it is gone its replacements from the same owner, is Ready "
        "without restarts for stable_for."
    )

    def run(self, ctx: ActionContext, params: PodHealthParams) -> ActionResult:
        from kubernetes import client

        from kubernaut.kube.pods import controller_of, read_pod_seen, rfc3339

        core, apps = client.CoreV1Api(ctx.api_client), client.AppsV1Api(ctx.api_client)
        first, _ = read_pod_seen(core, params.namespace, params.pod)
        owner = controller_of(first.metadata) if first is not None else self._guess_owner(apps, params)
        stable = params.stable_for.total_seconds()
        args = {
            "namespace": params.namespace,
            "pod": params.pod,
            "alerting_uid": params.pod_uid or (first.metadata.uid if first is not None else None),
            "since": rfc3339(params.since),
            "owner": owner.to_dict() if owner else None,
            "stable_for": stable,
        }
        what = (
            f"pod {params.namespace}/{params.pod} (or, once gone, its replacement) Ready "
            f"without restarts for {stable:g}s"
        )
        within = params.wait_timeout.total_seconds()
        return ActionResult(wait=ctx.wait("pod_health", args, what=what, within=within))

    def after_wait(
        self, ctx: ActionContext, params: PodHealthParams, result: ActionResult, outcome: WaitOutcome
    ) -> ActionResult:
        if not outcome.done:
            raise wait_error(outcome)
        return ActionResult(output={"healthy": True, **outcome.detail})

    @staticmethod
    def _guess_owner(apps: client.AppsV1Api, params: PodHealthParams) -> Owner | None:
        """The pod is already gone: ``<replicaset>-<5 chars>`` names a ReplicaSet's pod (or a
        DaemonSet's, whose pods are named the same way)."""
        from kubernaut.kube.errors import NotFound, api_errors
        from kubernaut.kube.pods import Owner, guess_replicaset_name

        base = guess_replicaset_name(params.pod)
        if base is None:
            return None
        for kind, read in (
            ("ReplicaSet", apps.read_namespaced_replica_set),
            ("DaemonSet", apps.read_namespaced_daemon_set),
        ):
            try:
                with api_errors(f"{kind.lower()} {params.namespace}/{base}"):
                    found = read(base, params.namespace)
            except NotFound:
                continue
            return Owner(kind, base, found.metadata.uid)
        return None


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
        within = params.wait_timeout.total_seconds()
        return ActionResult(
            wait=rollout_wait(ctx, "Deployment", params.namespace, params.deployment, within=within)
        )

    def after_wait(
        self, ctx: ActionContext, params: DeploymentReadyParams, result: ActionResult, outcome: WaitOutcome
    ) -> ActionResult:
        if not outcome.done:
            raise wait_error(outcome)
        return ActionResult(output={"healthy": True, **outcome.detail})


class NoOomParams(ActionParams):
    namespace: NamespaceName
    kind: WorkloadKind = "Deployment"
    name: ObjectName
    observe: Duration = Field(
        default=timedelta(minutes=1),
        description="How long the rolled-out pods are watched for an OOM kill",
    )
    wait_timeout: Duration = Field(
        default=timedelta(minutes=5), description="How long to wait for the rollout to complete"
    )


@register
class ValidateNoOomKills(Action[NoOomParams]):
    """Waits for the workload's rollout to complete, then watches its pods for ``observe``:
    the step fails as soon as any container of them shows an OOMKilled termination (now or
    as its last state), since that pod ran with the current memory limit and still ran out."""

    kind = "monitoring"
    name = "validate_no_oom_kills"
    Params = NoOomParams
    summary = (
        "Wait for a workload's rollout, then check that none of its containers is OOMKilled for a while."
    )

    def run(self, ctx: ActionContext, params: NoOomParams) -> ActionResult:
        rollout = min(params.wait_timeout.total_seconds(), ctx.remaining())
        observe = params.observe.total_seconds()
        wait = ctx.wait(
            "no_oom",
            {},
            what=f"{params.kind.lower()} {params.namespace}/{params.name} without OOM kills for {observe:g}s",
            within=rollout + observe + OBSERVE_SLACK,
        )
        args = {
            "kind": params.kind,
            "namespace": params.namespace,
            "name": params.name,
            "rollout_within": rollout,
            "rollout_deadline": wait.started + rollout,
            "observe": observe,
            "deadline": wait.deadline,
        }
        return ActionResult(wait=dataclasses.replace(wait, args=args))

    def after_wait(
        self, ctx: ActionContext, params: NoOomParams, result: ActionResult, outcome: WaitOutcome
    ) -> ActionResult:
        if not outcome.done:
            raise wait_error(outcome)
        detail = outcome.detail
        output = {
            "healthy": True,
            "oomKilled": [],
            "observedFor": detail["observedFor"],
            "tookSeconds": round(outcome.waited, 1),
            "restarts": detail["restarts"],
            "rollout": detail["rollout"],
        }
        return ActionResult(output=output)
