"""Faults that live in the application's contract with its pod spec, not in the workload:

* **bad config** — the application refuses a configuration value (``key`` = ``value``) at
  start and exits 1. A container crash-loops while a ConfigMap or Secret it references holds
  that value: through ``env[].valueFrom`` (configMapKeyRef/secretKeyRef), ``envFrom`` or a
  ``configMap``/``secret``/``projected`` volume of the pod. As on a real node, the reference is
  resolved again at every container start (environment variables are set when a container is
  created; the application reads its mounted files when it starts), so a container runs again
  on its next restart once the value is gone: by restoring the data, or by pointing the pod
  template back at a ConfigMap/Secret without it (a rollout).
* **slow start** — the application needs ``startup`` seconds before its liveness endpoint
  answers. A container whose liveness probe gives up earlier (its startupProbe's budget
  ``initialDelaySeconds + periodSeconds x failureThreshold`` when it has one, else the liveness
  probe's) is killed by the kubelet (Warning ``Unhealthy`` "Liveness probe failed: ...", Normal
  ``Killing`` "Container X failed liveness probe, will be restarted", exit code 137) and
  restarts in CrashLoopBackOff, forever; one with a larger budget comes up and runs. A container
  without a liveness probe is never killed (nothing probes it).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

# Kubernetes probe defaults (core/v1 Probe)
PERIOD_SECONDS, FAILURE_THRESHOLD = 10, 3
EFFECTS = ("bad-config", "liveness")


@dataclass(frozen=True)
class BadConfig:
    namespace: str
    key: str
    value: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "bad-config", "namespace": self.namespace, "key": self.key, "value": self.value}


@dataclass(frozen=True)
class SlowStart:
    namespace: str
    kind: str  # deployment | statefulset | daemonset
    workload: str
    startup: float  # seconds until the liveness endpoint answers

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "liveness",
            "namespace": self.namespace,
            "kind": self.kind,
            self.kind: self.workload,
            "startup": self.startup,
        }


def probe_budget(probe: dict[str, Any] | None) -> float | None:
    """Seconds a probe lets a container fail before it gives up (None: no probe)."""
    if not probe:
        return None
    period = int(probe.get("periodSeconds") or PERIOD_SECONDS)
    threshold = int(probe.get("failureThreshold") or FAILURE_THRESHOLD)
    return float(int(probe.get("initialDelaySeconds") or 0) + period * threshold)


def liveness_budget(container: dict[str, Any]) -> float | None:
    """How long the kubelet waits for a starting container before the liveness probe can kill
    it: the startupProbe's budget (liveness probing starts after it succeeds), else the
    liveness probe's own; None without a liveness probe."""
    if not container.get("livenessProbe"):
        return None
    startup = probe_budget(container.get("startupProbe"))
    return startup if startup is not None else probe_budget(container["livenessProbe"])


def _decoded(kind: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if kind == "ConfigMap":
        return value
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def _volume_sources(pod: dict[str, Any]) -> list[tuple[str, str, set[str] | None]]:
    """(kind, name, keys or None for all) of the pod's configMap/secret/projected volumes."""
    found: list[tuple[str, str, set[str] | None]] = []

    def keys(items: Any) -> set[str] | None:
        return {str(i.get("key")) for i in items if isinstance(i, dict)} if items else None

    for volume in pod.get("spec", {}).get("volumes") or []:
        if volume.get("configMap"):
            source = volume["configMap"]
            found.append(("ConfigMap", str(source.get("name", "")), keys(source.get("items"))))
        if volume.get("secret"):
            source = volume["secret"]
            found.append(("Secret", str(source.get("secretName", "")), keys(source.get("items"))))
        for item in (volume.get("projected") or {}).get("sources") or []:
            if item.get("configMap"):
                source = item["configMap"]
                found.append(("ConfigMap", str(source.get("name", "")), keys(source.get("items"))))
            if item.get("secret"):
                source = item["secret"]
                found.append(("Secret", str(source.get("name", "")), keys(source.get("items"))))
    return found


def config_references(
    pod: dict[str, Any], container: dict[str, Any]
) -> list[tuple[str, str, set[str] | None]]:
    """(kind, name, keys or None for all) of every ConfigMap/Secret the container reads."""
    refs: list[tuple[str, str, set[str] | None]] = []
    for env in container.get("env") or []:
        source = env.get("valueFrom") or {}
        if source.get("configMapKeyRef"):
            ref = source["configMapKeyRef"]
            refs.append(("ConfigMap", str(ref.get("name", "")), {str(ref.get("key"))}))
        if source.get("secretKeyRef"):
            ref = source["secretKeyRef"]
            refs.append(("Secret", str(ref.get("name", "")), {str(ref.get("key"))}))
    for env_from in container.get("envFrom") or []:
        if env_from.get("configMapRef"):
            refs.append(("ConfigMap", str(env_from["configMapRef"].get("name", "")), None))
        if env_from.get("secretRef"):
            refs.append(("Secret", str(env_from["secretRef"].get("name", "")), None))
    mounted = {m.get("name") for m in container.get("volumeMounts") or []}
    volumes = {v.get("name"): v for v in pod.get("spec", {}).get("volumes") or []}
    for name in mounted:
        if name in volumes:
            refs.extend(_volume_sources({"spec": {"volumes": [volumes[name]]}}))
    return refs


def rejected_config(
    pod: dict[str, Any], container: dict[str, Any], rules: list[BadConfig], read: Any
) -> tuple[str, str, str] | None:
    """(kind/name, key, value) of the first refused value the container reads, if any.
    ``read(kind, namespace, name)`` returns the ConfigMap/Secret or None."""
    namespace = pod["metadata"]["namespace"]
    mine = [r for r in rules if r.namespace == namespace]
    if not mine:
        return None
    for kind, name, keys in config_references(pod, container):
        obj = read(kind, namespace, name)
        data = (obj or {}).get("data") or {}
        for rule in mine:
            if keys is not None and rule.key not in keys:
                continue
            if _decoded(kind, data.get(rule.key)) == rule.value:
                return f"{kind}/{name}", rule.key, rule.value
    return None


def failing(
    pod: dict[str, Any],
    workload: tuple[str, str] | None,
    bad_configs: list[BadConfig],
    slow_starts: list[SlowStart],
    read: Any,
) -> tuple[str | None, set[str], dict[str, str]]:
    """(effect, failing containers, why per container): ``bad-config`` or ``liveness``."""
    why: dict[str, str] = {}
    for container in pod.get("spec", {}).get("containers") or []:
        rejected = rejected_config(pod, container, bad_configs, read)
        if rejected is not None:
            source, key, value = rejected
            why[container["name"]] = f"invalid configuration: {key}={value!r} (from {source})"
    if why:
        return "bad-config", set(why), why
    if workload is None:
        return None, set(), {}
    namespace = pod["metadata"]["namespace"]
    for slow in slow_starts:
        if (slow.kind, slow.namespace, slow.workload) != (workload[0], namespace, workload[1]):
            continue
        for container in pod.get("spec", {}).get("containers") or []:
            budget = liveness_budget(container)
            if budget is not None and budget < slow.startup:
                why[container["name"]] = (
                    f"needs {slow.startup:g}s to start; the liveness probe gives up after {budget:g}s"
                )
    return ("liveness" if why else None), set(why), why


def crash_lines(effect: str, why: str) -> list[str]:
    """What the container logs before it stops."""
    if effect == "bad-config":
        return [f"error: {why}", "exiting with status 1"]
    return ["starting: loading caches", f"received SIGTERM ({why}); shutting down"]


def liveness_message(pod: dict[str, Any], container: dict[str, Any]) -> str:
    """The kubelet's Unhealthy event message for the container's liveness probe."""
    probe = container.get("livenessProbe") or {}
    ip = (pod.get("status") or {}).get("podIP") or "10.244.0.1"
    if probe.get("httpGet"):
        get = probe["httpGet"]
        port, path = get.get("port", 80), get.get("path", "/")
        return (
            f'Liveness probe failed: Get "http://{ip}:{port}{path}": '
            f"dial tcp {ip}:{port}: connect: connection refused"
        )
    if probe.get("tcpSocket"):
        port = probe["tcpSocket"].get("port", 80)
        return f"Liveness probe failed: dial tcp {ip}:{port}: connect: connection refused"
    return "Liveness probe failed: command exited with 1"
