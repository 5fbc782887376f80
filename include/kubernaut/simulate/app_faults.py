"""The scenario faults in the application's contract with its pod spec
(``kubernaut.sandbox.app_faults``): a config change the application refuses, rolled out the
way versioned configuration is (``bad-config``), and an application that starts slower than its
liveness probe allows (``liveness``)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

from kubernaut.sandbox.app_faults import BadConfig, SlowStart, liveness_budget, rejected_config
from kubernaut.simulate.scenario import Fault

# kustomize's configMapGenerator/secretGenerator name suffix: "-" and 10 characters of a hash
_GENERATED = re.compile(r"^(?P<base>.+)-[a-z0-9]{10}$")
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # kustomize's encoding: no vowels, no look-alikes


class AppFaultError(ValueError):
    """The fault cannot be set up as written (the message names what is missing)."""


def generated_name(name: str, data: dict[str, str]) -> str:
    """The name a generator gives the changed data: the same base, a suffix from its hash."""
    match = _GENERATED.match(name)
    base = match.group("base") if match else name
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).digest()
    suffix = "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:10])
    return f"{base}-{suffix}"


def _repoint(template: dict[str, Any], kind: str, old: str, new: str) -> int:
    """Point every reference of the pod template to ConfigMap/Secret ``old`` at ``new``."""
    count = 0
    spec = template.get("spec") or {}
    cm = kind == "ConfigMap"
    key_ref, env_ref = ("configMapKeyRef", "configMapRef") if cm else ("secretKeyRef", "secretRef")
    name_field = "name" if kind == "ConfigMap" else "secretName"
    volume_field = "configMap" if kind == "ConfigMap" else "secret"

    def swap(ref: dict[str, Any], field: str) -> None:
        nonlocal count
        if ref.get(field) == old:
            ref[field] = new
            count += 1

    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get(key_ref)
            if ref:
                swap(ref, "name")
        for env_from in container.get("envFrom") or []:
            if env_from.get(env_ref):
                swap(env_from[env_ref], "name")
    for volume in spec.get("volumes") or []:
        if volume.get(volume_field):
            swap(volume[volume_field], name_field)
        for source in (volume.get("projected") or {}).get("sources") or []:
            if source.get(volume_field):
                swap(source[volume_field], "name")
    return count


def inject_bad_config(cluster: Any, fault: Fault) -> None:
    """A new version of the ConfigMap/Secret with ``key`` = ``value`` (a value the application
    refuses), under a generated name, and the Deployment's pod template pointed at it: what
    ``kubectl apply -k`` does after an edit of a configMapGenerator/secretGenerator. The old
    version stays (kustomize does not prune it), the Deployment rolls out a new ReplicaSet."""
    assert fault.key is not None and fault.value is not None
    kind, old = ("ConfigMap", fault.configmap) if fault.configmap else ("Secret", fault.secret)
    assert old is not None
    dep = cluster.get("deployments", fault.namespace, fault.deployment)
    if dep is None:
        raise AppFaultError(f"no deployment {fault.namespace}/{fault.deployment}")
    current = cluster.get(kind.lower() + "s", fault.namespace, old)
    if current is None:
        raise AppFaultError(f"no {kind} {fault.namespace}/{old}")
    data = dict(current.get("data") or {})
    data[fault.key] = fault.value if kind == "ConfigMap" else _b64(fault.value)
    new = generated_name(old, data)
    meta = {
        k: copy.deepcopy(v)
        for k, v in current["metadata"].items()
        if k in ("namespace", "labels", "annotations")
    }
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {**meta, "name": new},
        "data": data,
    }
    if kind == "Secret":
        manifest["type"] = current.get("type", "Opaque")
    template = dep["spec"]["template"]
    if not _repoint(template, kind, old, new):
        raise AppFaultError(
            f"deployment {fault.namespace}/{fault.deployment} does not reference {kind} {old} "
            "(env valueFrom, envFrom or a volume)"
        )
    cluster.call(
        lambda: cluster.emulator.faults.bad_configs.append(BadConfig(fault.namespace, fault.key, fault.value))
    )
    cluster.apply(manifest)
    cluster.apply(dep)


def _b64(value: str) -> str:
    import base64

    return base64.b64encode(value.encode()).decode()


def inject_liveness(cluster: Any, fault: Fault) -> None:
    """From now on the application needs ``startup`` seconds before its liveness endpoint answers
    (a slower release, a cache warmed at start): containers whose liveness probe gives up
    earlier are killed and restarted, forever."""
    kind, name = fault.workload
    obj = cluster.get(f"{kind}s", fault.namespace, name)
    if obj is None:
        raise AppFaultError(f"no {kind} {fault.namespace}/{name}")
    containers = ((obj["spec"].get("template") or {}).get("spec") or {}).get("containers") or []
    budgets = [liveness_budget(c) for c in containers]
    if all(b is None for b in budgets):
        raise AppFaultError(f"{kind} {fault.namespace}/{name} has no container with a livenessProbe")
    assert fault.startup is not None
    slow = SlowStart(fault.namespace, kind, name, fault.startup)
    cluster.call(lambda: cluster.emulator.faults.slow_starts.append(slow))


def _crash_looping(pod: dict[str, Any]) -> bool:
    return any(
        ((s.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
        for s in (pod.get("status") or {}).get("containerStatuses") or []
    )


def bad_config_shows(cluster: Any, fault: Fault, pods: list[dict[str, Any]]) -> bool:
    """A pod that reads the refused value crash-loops."""
    assert fault.key is not None and fault.value is not None
    rules = [BadConfig(fault.namespace, fault.key, fault.value)]

    def read(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = cluster.get(kind.lower() + "s", namespace, name)
        return found

    return any(
        _crash_looping(p)
        and any(rejected_config(p, c, rules, read) for c in p["spec"].get("containers") or [])
        for p in pods
    )


def liveness_shows(pods: list[dict[str, Any]]) -> bool:
    """Every pod of the workload has been killed by its liveness probe and crash-loops."""
    return bool(pods) and all(
        _crash_looping(p)
        and any(
            ((s.get("lastState") or {}).get("terminated") or {}).get("exitCode") == 137
            for s in (p.get("status") or {}).get("containerStatuses") or []
        )
        for p in pods
    )
