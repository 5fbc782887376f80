"""ResourceQuota in the sandbox: the quota admission plugin and the quota controller's status.

Admission (``plugin/pkg/admission/resourcequota``): creating a pod (or another counted object)
that would take a namespace's usage of a quota's ``spec.hard`` resource above its limit is
refused with ``403 Forbidden``: ``pods "web-1" is forbidden: exceeded quota: compute,
requested: requests.memory=512Mi, used: requests.memory=1536Mi, limited: requests.memory=2Gi``;
a pod that leaves out a compute resource the quota limits: ``failed quota: compute: must specify
limits.memory for: app``. Dry-run creates are checked too. The controller keeps ``status.hard``
(a copy of ``spec.hard``) and ``status.used`` (for the resources in ``hard``) up to date.

Counted: ``pods``, ``cpu``/``requests.cpu``, ``memory``/``requests.memory``, ``limits.cpu``,
``limits.memory`` over pods not Succeeded/Failed (their containers; init containers left out),
and object counts ``count/<plural>`` plus ``services``, ``configmaps``, ``secrets``,
``persistentvolumeclaims``, ``resourcequotas``. Quota scopes are not modelled: a quota with
``scopes`` or ``scopeSelector`` is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from kubernaut.sandbox.errors import ApiError
from kubernaut.sandbox.resources import ResourceSpec, resolve
from kubernaut.sandbox.store import Store

RESOURCE_QUOTAS, PODS = resolve("resourcequotas"), resolve("pods")
COMPUTE = {
    "cpu": ("requests", "cpu"),
    "requests.cpu": ("requests", "cpu"),
    "memory": ("requests", "memory"),
    "requests.memory": ("requests", "memory"),
    "limits.cpu": ("limits", "cpu"),
    "limits.memory": ("limits", "memory"),
}
LEGACY_COUNTS = {
    "services": "services",
    "configmaps": "configmaps",
    "secrets": "secrets",
    "persistentvolumeclaims": "persistentvolumeclaims",
    "resourcequotas": "resourcequotas",
}


def quantity(value: Any) -> Decimal:
    return Decimal(parse_quantity(value))


def format_quantity(key: str, value: Decimal) -> str:
    """A quantity the way the API prints it: cpu in cores or millicores, bytes in binary units."""
    if key in COMPUTE and COMPUTE[key][1] == "cpu":
        return str(int(value)) if value == value.to_integral_value() else f"{int(value * 1000)}m"
    if key in COMPUTE:
        for suffix, size in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
            if value and value % size == 0:
                return f"{int(value / size)}{suffix}"
    return str(int(value)) if value == value.to_integral_value() else str(value)


def _counts_pod(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _pod_usage(pod: dict[str, Any], key: str) -> Decimal:
    if key == "pods":
        return Decimal(1)
    section, resource = COMPUTE[key]
    total = Decimal(0)
    for container in pod["spec"].get("containers") or []:
        value = ((container.get("resources") or {}).get(section) or {}).get(resource)
        if value is None and section == "requests":  # requests default to limits
            value = ((container.get("resources") or {}).get("limits") or {}).get(resource)
        if value is not None:
            total += quantity(value)
    return total


def _plural_of(key: str) -> str | None:
    if key.startswith("count/"):
        return key[len("count/") :]
    return LEGACY_COUNTS.get(key)


def _counted(key: str) -> bool:
    return key == "pods" or key in COMPUTE or _plural_of(key) is not None


def _objects_of(store: Store, plural: str, namespace: str) -> list[dict[str, Any]]:
    try:
        spec = resolve(plural)
    except KeyError:
        return []
    return store.list(spec, namespace)


def usage(store: Store, namespace: str, key: str) -> Decimal:
    """What the namespace uses of one quota resource now."""
    if key == "pods" or key in COMPUTE:
        return sum((_pod_usage(p, key) for p in store.list(PODS, namespace) if _counts_pod(p)), Decimal(0))
    plural = _plural_of(key)
    return Decimal(len(_objects_of(store, plural, namespace))) if plural else Decimal(0)


def _request(spec: ResourceSpec, obj: dict[str, Any], key: str) -> Decimal | None:
    """What creating ``obj`` adds to a quota resource (None: it does not count for it)."""
    if spec.plural == "pods" and (key == "pods" or key in COMPUTE):
        return _pod_usage(obj, key)
    plural = _plural_of(key)
    if plural is not None and plural.split(".", 1)[0] == spec.plural:
        return Decimal(1)
    return None


def _applies(quota: dict[str, Any]) -> bool:
    spec = quota.get("spec") or {}
    return not spec.get("scopes") and not spec.get("scopeSelector")


def _pretty(values: dict[str, Decimal]) -> str:
    return ",".join(f"{k}={format_quantity(k, v)}" for k, v in sorted(values.items()))


def forbidden(spec: ResourceSpec, name: str, message: str) -> ApiError:
    return ApiError(
        403,
        "Forbidden",
        f'{spec.display} "{name}" is forbidden: {message}',
        {"name": name, "kind": spec.plural},
    )


def admission(store: Store) -> Callable[[ResourceSpec, dict[str, Any]], None]:
    """The quota check for ``Store.create`` of this store."""

    def admit(spec: ResourceSpec, obj: dict[str, Any]) -> None:
        namespace = obj["metadata"].get("namespace")
        if not spec.namespaced or not namespace:
            return
        name = obj["metadata"]["name"]
        for quota in store.list(RESOURCE_QUOTAS, namespace):
            if not _applies(quota):
                continue
            hard = {
                k: quantity(v)
                for k, v in ((quota.get("spec") or {}).get("hard") or {}).items()
                if _counted(k)
            }
            quota_name = quota["metadata"]["name"]
            if spec.plural == "pods":
                missing = _missing(obj, hard)
                if missing:
                    raise forbidden(spec, name, f"failed quota: {quota_name}: must specify {missing}")
            requested = {k: r for k in hard if (r := _request(spec, obj, k)) is not None and r > 0}
            used = {k: usage(store, namespace, k) for k in requested}
            over = sorted(k for k in requested if used[k] + requested[k] > hard[k])
            if over:
                raise forbidden(
                    spec,
                    name,
                    f"exceeded quota: {quota_name}, "
                    f"requested: {_pretty({k: requested[k] for k in over})}, "
                    f"used: {_pretty({k: used[k] for k in over})}, "
                    f"limited: {_pretty({k: hard[k] for k in over})}",
                )

    return admit


def _missing(pod: dict[str, Any], hard: dict[str, Decimal]) -> str:
    """`limits.memory for: app; requests.cpu for: app,sidecar` for what the pod leaves out."""
    parts = []
    for key in sorted(k for k in hard if k in COMPUTE):
        section, resource = COMPUTE[key]
        lacking = [
            c["name"]
            for c in pod["spec"].get("containers") or []
            if resource not in ((c.get("resources") or {}).get(section) or {})
            and not (section == "requests" and resource in ((c.get("resources") or {}).get("limits") or {}))
        ]
        if lacking:
            parts.append(f"{key} for: {','.join(lacking)}")
    return "; ".join(parts)


def reconcile_quotas(
    store: Store, set_status: Callable[[ResourceSpec, dict[str, Any], dict[str, Any]], None]
) -> None:
    for quota in store.list(RESOURCE_QUOTAS):
        hard = dict((quota.get("spec") or {}).get("hard") or {})
        namespace = quota["metadata"]["namespace"]
        used = {
            k: format_quantity(k, usage(store, namespace, k)) if _applies(quota) and _counted(k) else "0"
            for k in hard
        }
        set_status(RESOURCE_QUOTAS, quota, {"hard": hard, "used": used})
