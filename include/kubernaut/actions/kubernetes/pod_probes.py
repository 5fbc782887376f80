"""``inspect_liveness_probe``: why a container keeps restarting, as far as its probes tell.

Reads the pod's containers (restart count, last termination), their liveness and startup probe
settings with the time each lets a starting container take (``initialDelaySeconds +
periodSeconds x failureThreshold``; with a startupProbe, liveness probing starts only after it
succeeds), and the pod's events: the kubelet's ``Unhealthy`` "Liveness probe failed: ..." and
``Killing`` "Container X failed liveness probe, will be restarted". ``killedByLiveness`` says
whether the kubelet killed a container for its liveness probe (a Killing event naming it, or
failed liveness probes and a last termination with exit code 137: SIGKILL), as opposed to a
container that exits on its own (a crash, an OOM kill: reason OOMKilled). Read-only.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName

# Kubernetes probe defaults (core/v1 Probe)
PERIOD_SECONDS, FAILURE_THRESHOLD, TIMEOUT_SECONDS = 10, 3, 1
LIVENESS_FAILED, LIVENESS_KILL = "Liveness probe failed", "failed liveness probe"


class InspectLivenessParams(ActionParams):
    namespace: NamespaceName
    pod: ObjectName
    container: str = Field(
        default="", max_length=63, description="The container to report on (default: the first one killed)"
    )
    max_events: int = Field(default=10, ge=1, le=50, description="Liveness events kept (newest first)")


def handler(probe: dict[str, Any]) -> str:
    """What the probe checks, as kubectl describe shows it."""
    if probe.get("httpGet"):
        get = probe["httpGet"]
        return f"http-get {get.get('scheme', 'HTTP').lower()}://:{get.get('port')}{get.get('path', '/')}"
    if probe.get("tcpSocket"):
        return f"tcp-socket :{probe['tcpSocket'].get('port')}"
    if probe.get("grpc"):
        return f"grpc :{probe['grpc'].get('port')}"
    if probe.get("exec"):
        return "exec " + " ".join(str(a) for a in probe["exec"].get("command") or [])
    return "unknown"


def probe_settings(probe: dict[str, Any] | None) -> dict[str, Any] | None:
    """The probe's settings with defaults filled in, and ``budgetSeconds``: how long a starting
    container may fail it before the kubelet gives up."""
    if not probe:
        return None
    delay = int(probe.get("initialDelaySeconds") or 0)
    period = int(probe.get("periodSeconds") or PERIOD_SECONDS)
    threshold = int(probe.get("failureThreshold") or FAILURE_THRESHOLD)
    return {
        "handler": handler(probe),
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": int(probe.get("timeoutSeconds") or TIMEOUT_SECONDS),
        "failureThreshold": threshold,
        "budgetSeconds": delay + period * threshold,
    }


def container_report(spec: dict[str, Any], status: dict[str, Any] | None) -> dict[str, Any]:
    liveness, startup = probe_settings(spec.get("livenessProbe")), probe_settings(spec.get("startupProbe"))
    last = ((status or {}).get("lastState") or {}).get("terminated") or {}
    return {
        "name": spec["name"],
        "restartCount": int((status or {}).get("restartCount") or 0),
        "lastTermination": {k: last.get(k) for k in ("reason", "exitCode", "finishedAt")} if last else None,
        "livenessProbe": liveness,
        "startupProbe": startup,
        # how long a starting container has before the liveness probe can kill it
        "startBudgetSeconds": (startup or liveness or {}).get("budgetSeconds") if liveness else None,
    }


@register
class InspectLivenessProbe(Action[InspectLivenessParams]):
    kind = "kubernetes"
    name = "inspect_liveness_probe"
    Params = InspectLivenessParams
    summary = (
        "Read a pod's liveness/startup probe settings, restart counts, last terminations and liveness "
        "events, and tell whether the kubelet killed a container for its liveness probe."
    )

    def run(self, ctx: ActionContext, params: InspectLivenessParams) -> ActionResult:
        from kubernaut.kube.diagnostics import object_events
        from kubernaut.kube.objects import find_object

        pod = find_object(ctx.api_client, "Pod", params.namespace, params.pod)
        if pod is None:
            return ActionResult(output={"exists": False, "namespace": params.namespace, "pod": params.pod})
        statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        containers = [
            container_report(c, statuses.get(c["name"])) for c in pod["spec"].get("containers") or []
        ]
        events, _ = object_events(ctx, "Pod", params.namespace, params.pod, 200)
        failures = [
            e for e in events if e["reason"] == "Unhealthy" and LIVENESS_FAILED in (e["message"] or "")
        ]
        kills = [e for e in events if e["reason"] == "Killing" and LIVENESS_KILL in (e["message"] or "")]
        killed = sorted(
            c["name"]
            for c in containers
            if c["livenessProbe"]
            and c["restartCount"] > 0
            and (
                any(f"Container {c['name']} {LIVENESS_KILL}" in (e["message"] or "") for e in kills)
                or (failures and (c["lastTermination"] or {}).get("exitCode") == 137)
            )
            and (c["lastTermination"] or {}).get("reason") != "OOMKilled"
        )
        focus = (
            next((c for c in containers if params.container and c["name"] == params.container), None)
            or next((c for c in containers if c["name"] in killed), None)
            or next((c for c in containers if c["livenessProbe"]), None)
            or (containers[0] if containers else None)
        )
        output = {
            "exists": True,
            "container": focus,
            "namespace": params.namespace,
            "pod": params.pod,
            "containers": containers,
            "restarts": sum(c["restartCount"] for c in containers),
            "livenessFailures": sum(int(e["count"]) for e in failures),
            "livenessKills": sum(int(e["count"]) for e in kills),
            "killedByLiveness": bool(killed),
            "killedContainers": killed,
            "events": [
                {k: e[k] for k in ("type", "reason", "message", "count", "last")}
                for e in [*kills, *failures][: params.max_events]
            ],
        }
        return ActionResult(output=output)


__all__ = ["InspectLivenessProbe", "probe_settings"]
