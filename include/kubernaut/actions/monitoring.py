"""Built-in monitoring actions: health checks that wait, bounded by their own timeout."""

from __future__ import annotations

import datetime
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult, VerificationFailed
from kubernaut.actions.k8s_workloads import WorkloadKind
from kubernaut.actions.kubernetes import wait_deployment_ready
from kubernaut.actions.registry import register
from kubernaut.durations import Duration, format_duration
from kubernaut.kube.names import NamespaceName, ObjectName

if TYPE_CHECKING:
    from kubernetes import client

    from kubernaut.kube.pods import Owner


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


class Steadiness:
    """Tracks, per pod uid, since when it has been Ready with an unchanged restart count."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.since: dict[str, tuple[float, int]] = {}

    def observe(self, pods: list[client.V1Pod]) -> tuple[bool, dict[str, float | None]]:
        from kubernaut.kube.pods import container_summaries, is_ready

        now = time.monotonic()
        steady: dict[str, float | None] = {}
        for pod in pods:
            uid, restarts = pod.metadata.uid, sum(c["restartCount"] for c in container_summaries(pod))
            if not is_ready(pod):
                self.since.pop(uid, None)
                steady[pod.metadata.name] = None
                continue
            first, seen = self.since.get(uid, (now, restarts))
            if seen != restarts:  # restarted since the last look: the window starts again
                first = now
            self.since[uid] = (first, restarts)
            steady[pod.metadata.name] = round(now - first, 1)
        ok = bool(pods) and all(v is not None and v >= self.window for v in steady.values())
        return ok, steady


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

        from kubernaut.kube.pods import controller_of, owner_pods, pod_summary, read_pod_seen
        from kubernaut.kube.waiting import wait_for

        core, apps = client.CoreV1Api(ctx.api_client), client.AppsV1Api(ctx.api_client)
        first, _ = read_pod_seen(core, params.namespace, params.pod)
        alerting_uid = params.pod_uid or (first.metadata.uid if first is not None else None)
        since = params.since
        owner = controller_of(first.metadata) if first is not None else self._guess_owner(apps, params)
        steadiness = Steadiness(params.stable_for.total_seconds())

        def check() -> tuple[bool, dict[str, Any]]:
            nonlocal owner, since
            pod, seen_at = read_pod_seen(core, params.namespace, params.pod)
            alive = pod is not None and pod.metadata.deletion_timestamp is None
            if pod is not None and alive and (alerting_uid is None or pod.metadata.uid == alerting_uid):
                since = seen_at if since is None else max(since, seen_at)  # replacements come later
                ok, steady = steadiness.observe([pod])
                return ok, {"pod": pod_summary(pod), "replacement": False, "steadyFor": steady}
            if owner is None and pod is not None:
                owner = controller_of(pod.metadata)
            gone = {"name": params.pod, "exists": pod is not None, "uid": alerting_uid}
            if owner is None:
                return False, {"pod": gone, "reason": "the pod is gone and had no controller to replace it"}
            candidates = sorted(
                (
                    p
                    for p in owner_pods(core, apps, params.namespace, owner)
                    if p.metadata.uid != alerting_uid
                    and (since is None or p.metadata.creation_timestamp >= since)
                ),
                key=lambda p: (p.metadata.creation_timestamp, p.metadata.name),
            )
            if not candidates:
                return False, {"pod": gone, "reason": f"no replacement from {owner.kind} {owner.name} yet"}
            ok, steady = steadiness.observe(candidates)
            return ok, {
                "pod": pod_summary(candidates[0]),
                "replacement": True,
                "replacements": [p.metadata.name for p in candidates],
                "steadyFor": steady,
            }

        seen = wait_for(
            ctx,
            check,
            what=(
                f"pod {params.namespace}/{params.pod} (or, once gone, its replacement) Ready "
                f"without restarts for {params.stable_for.total_seconds():g}s"
            ),
            timeout=params.wait_timeout.total_seconds(),
        )
        since_text = since.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if since else None
        return ActionResult(output={"healthy": True, **seen, "since": since_text})

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
        status = wait_deployment_ready(
            ctx, params.namespace, params.deployment, timeout=params.wait_timeout.total_seconds()
        )
        return ActionResult(output={"healthy": True, **status})


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


def oom_kills(pods: list[client.V1Pod]) -> list[dict[str, Any]]:
    """Containers whose current or last instance the kernel killed for exceeding its memory limit."""
    from kubernaut.kube.pods import container_summaries

    found = []
    for pod in pods:
        limits = {c.name: ((c.resources.limits or {}) if c.resources else {}) for c in pod.spec.containers}
        for container in container_summaries(pod):
            if container["oomKilled"]:
                found.append(
                    {
                        "pod": pod.metadata.name,
                        "container": container["name"],
                        "restartCount": container["restartCount"],
                        "memoryLimit": limits.get(container["name"], {}).get("memory"),
                    }
                )
    return found


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
        from kubernaut.kube.pods import container_summaries
        from kubernaut.kube.workloads import wait_workload_ready, workload_pods

        what = f"{params.kind.lower()} {params.namespace}/{params.name}"
        started = time.monotonic()
        status = wait_workload_ready(
            ctx, params.kind, params.namespace, params.name, timeout=params.wait_timeout.total_seconds()
        )
        window = params.observe.total_seconds()
        if window > ctx.remaining():
            raise VerificationFailed(
                f"{what}: {ctx.remaining():.0f}s left of the step, too little to watch for {window:g}s"
            )
        watched = time.monotonic()
        end = watched + window
        seen: dict[str, int] = {}
        while True:
            pods = workload_pods(ctx, params.kind, params.namespace, params.name)
            killed = oom_kills(pods)
            if killed:
                listed = "; ".join(
                    f"container {k['container']} of pod {k['pod']} (memory limit {k['memoryLimit']}, "
                    f"{k['restartCount']} restarts)"
                    for k in killed
                )
                raise VerificationFailed(f"{what}: OOMKilled again after the rollout: {listed}")
            for pod in pods:
                seen[pod.metadata.name] = sum(c["restartCount"] for c in container_summaries(pod))
            if time.monotonic() >= end:
                break
            time.sleep(min(ctx.poll_interval, max(0.05, end - time.monotonic())))
        output = {
            "healthy": True,
            "oomKilled": [],
            "observedFor": round(time.monotonic() - watched, 1),
            "tookSeconds": round(time.monotonic() - started, 1),
            "restarts": seen,
            "rollout": status,
        }
        return ActionResult(output=output)
