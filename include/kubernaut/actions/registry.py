"""Action lookup by (kind, name).

Built-ins and user packages load on first use. A package adds actions through the
``kubernaut.actions`` entry-point group: each entry point names an Action class, or a
module whose import declares actions with ``@register``.

One bad plugin never takes the others down: an entry point that fails to import, names
something that is not an action, or clashes with an action already registered (a
built-in always keeps its name) is logged, skipped and kept in ``problems`` with its
package, so ``kubernaut validate``/``kubernaut actions`` and the DAG file can show it.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points, packages_distributions
from types import ModuleType
from typing import Any, TypeVar

from kubernaut.actions.base import ACTION_KINDS, Action

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "kubernaut.actions"
BUILTIN_PACKAGE = "kubernaut (built-in)"
BUILTIN_MODULES = (
    "kubernaut.actions.kubernetes.pods",
    "kubernaut.actions.kubernetes.pod_quarantine",
    "kubernaut.actions.kubernetes.pod_probes",
    "kubernaut.actions.kubernetes.deployments",
    "kubernaut.actions.kubernetes.container_resources",
    "kubernaut.actions.kubernetes.statefulsets",
    "kubernaut.actions.kubernetes.daemonsets",
    "kubernaut.actions.kubernetes.jobs",
    "kubernaut.actions.kubernetes.nodes",
    "kubernaut.actions.kubernetes.node_disk",
    "kubernaut.actions.kubernetes.machines",
    "kubernaut.actions.kubernetes.config",
    "kubernaut.actions.kubernetes.config_rollback",
    "kubernaut.actions.kubernetes.storage",
    "kubernaut.actions.kubernetes.capacity",
    "kubernaut.actions.kubernetes.access",
    "kubernaut.actions.kubernetes.certificates",
    "kubernaut.actions.kubernetes.patch",
    "kubernaut.actions.kubernetes.diagnostics",
    "kubernaut.actions.kubernetes.cluster_health",
    "kubernaut.actions.monitoring",
    "kubernaut.actions.custom",
    "kubernaut.actions.monitoring_prometheus",
    "kubernaut.actions.monitoring_alertmanager",
    "kubernaut.actions.monitoring_notify",
    "kubernaut.actions.custom_http",
    "kubernaut.actions.custom_script",
)

# Which built-in module declares which action, so that looking up one action (a worker
# parsing the DAG of one template) imports only the modules it needs. Only a shortcut: an
# action missing here, or found elsewhere, is looked up after loading everything
# (tests/unit/test_registry.py checks that this matches what the modules declare).
BUILTIN_ACTIONS: dict[tuple[str, str], str] = {
    **{
        ("kubernetes", name): "kubernaut.actions.kubernetes.pods"
        for name in ("delete_pod", "get_pod_logs", "get_pod_status", "restart_pod", "rollback_pod_restart")
    },
    ("kubernetes", "quarantine_pod"): "kubernaut.actions.kubernetes.pod_quarantine",
    ("kubernetes", "inspect_liveness_probe"): "kubernaut.actions.kubernetes.pod_probes",
    **{
        ("kubernetes", name): "kubernaut.actions.kubernetes.deployments"
        for name in (
            "get_deployment_status",
            "rollback_deployment",
            "rollout_restart_deployment",
            "scale_deployment",
        )
    },
    ("kubernetes", "increase_resources"): "kubernaut.actions.kubernetes.container_resources",
    **{
        ("kubernetes", name): "kubernaut.actions.kubernetes.statefulsets"
        for name in (
            "get_statefulset_status",
            "increase_statefulset_resources",
            "restart_statefulset",
            "rollback_statefulset",
            "scale_statefulset",
        )
    },
    **{
        ("kubernetes", name): "kubernaut.actions.kubernetes.daemonsets"
        for name in ("restart_daemonset", "rollback_daemonset")
    },
    **{
        ("kubernetes", name): "kubernaut.actions.kubernetes.jobs"
        for name in ("delete_job", "rerun_job", "suspend_cronjob")
    },
    **{
        ("kubernetes", name): "kubernaut.actions.kubernetes.nodes"
        for name in ("cordon_node", "drain_node", "taint_node", "uncordon_node", "untaint_node")
    },
    ("kubernetes", "cleanup_node_disk"): "kubernaut.actions.kubernetes.node_disk",
    **{
        ("kubernetes", name): "kubernaut.actions.kubernetes.machines"
        for name in ("replace_node", "scale_node_group")
    },
    **{
        ("kubernetes", name): "kubernaut.actions.kubernetes.config"
        for name in ("rotate_secret", "update_configmap")
    },
    ("kubernetes", "rollback_config_change"): "kubernaut.actions.kubernetes.config_rollback",
    **{
        ("kubernetes", name): "kubernaut.actions.kubernetes.storage"
        for name in ("create_snapshot", "expand_pvc")
    },
    **{
        ("kubernetes", name): "kubernaut.actions.kubernetes.capacity"
        for name in ("update_hpa", "update_resource_quota")
    },
    ("kubernetes", "remove_role_binding_subject"): "kubernaut.actions.kubernetes.access",
    ("kubernetes", "renew_certificate"): "kubernaut.actions.kubernetes.certificates",
    ("kubernetes", "patch_resource"): "kubernaut.actions.kubernetes.patch",
    ("kubernetes", "collect_diagnostics"): "kubernaut.actions.kubernetes.diagnostics",
    ("kubernetes", "collect_cluster_health"): "kubernaut.actions.kubernetes.cluster_health",
    ("monitoring", "validate_deployment_ready"): "kubernaut.actions.monitoring",
    ("monitoring", "validate_no_oom_kills"): "kubernaut.actions.monitoring",
    ("monitoring", "validate_pod_health"): "kubernaut.actions.monitoring",
    ("monitoring", "collect_metrics"): "kubernaut.actions.monitoring_prometheus",
    ("monitoring", "prometheus_query"): "kubernaut.actions.monitoring_prometheus",
    ("monitoring", "prometheus_range_check"): "kubernaut.actions.monitoring_prometheus",
    ("monitoring", "check_alert_resolved"): "kubernaut.actions.monitoring_alertmanager",
    ("monitoring", "silence_alert"): "kubernaut.actions.monitoring_alertmanager",
    ("monitoring", "create_alert_annotation"): "kubernaut.actions.monitoring_notify",
    ("monitoring", "notify"): "kubernaut.actions.monitoring_notify",
    ("custom", "log"): "kubernaut.actions.custom",
    ("custom", "wait"): "kubernaut.actions.custom",
    ("custom", "http_request"): "kubernaut.actions.custom_http",
    ("custom", "run_script"): "kubernaut.actions.custom_script",
}

A = TypeVar("A", bound=type[Action[Any]])
ActionClass = type[Action[Any]]

# Every class decorated with @register, in import order, with the module object it was
# declared in. A module is imported once per process, so each registry finds a module's
# actions here rather than by importing it (a module imported anew replaces its entries).
_DECLARED: list[tuple[ActionClass, ModuleType | None]] = []
# True while a registry imports built-in or plugin modules: @register then only declares,
# and that registry adds the classes itself, with their package and without raising.
_IMPORTING: ContextVar[bool] = ContextVar("kubernaut_actions_importing", default=False)


class UnknownAction(LookupError):
    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(
            f"unknown {kind} action {name!r}{hint} (known {kind} actions: {', '.join(sorted(known))})"
        )
        self.kind, self.name = kind, name


@dataclass(frozen=True)
class RegistryProblem:
    """An action entry point that was skipped: ``entry_point`` is ``name = value``."""

    entry_point: str
    package: str
    message: str

    def __str__(self) -> str:
        return f"action entry point '{self.entry_point}' of package {self.package}: {self.message}"


def _qualified(cls: ActionClass) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_kind(cls: ActionClass) -> None:
    if getattr(cls, "kind", None) not in ACTION_KINDS:
        raise ValueError(
            f"{cls.__qualname__}: kind must be one of {ACTION_KINDS}, got {getattr(cls, 'kind', None)!r}"
        )


def _declared_in(module: str) -> list[ActionClass]:
    """The actions declared by ``module`` (or its submodules) as it is imported now."""
    return [
        cls
        for cls, where in _DECLARED
        if (cls.__module__ == module or cls.__module__.startswith(module + "."))
        and where is sys.modules.get(cls.__module__)
    ]


def _entry_point_package(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    name = dist.metadata["Name"] if dist is not None else None
    return f"{name} {dist.version}" if dist is not None and name else "(unknown distribution)"


def _module_package(module: str) -> str:
    """The installed distribution that provides ``module`` (for actions registered directly)."""
    top = module.split(".", 1)[0]
    if top == "kubernaut":
        return BUILTIN_PACKAGE
    dists = _distributions().get(top)
    return dists[0] if dists else f"{top} (not an installed distribution)"


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(packages_distributions())  # scans every installed distribution: once


@contextmanager
def _importing() -> Iterator[None]:
    token = _IMPORTING.set(True)
    try:
        yield
    finally:
        _IMPORTING.reset(token)


class ActionRegistry:
    def __init__(self, *, builtin_modules: tuple[str, ...] = BUILTIN_MODULES) -> None:
        self._actions: dict[tuple[str, str], ActionClass] = {}
        self._packages: dict[tuple[str, str], str] = {}  # unset: looked up when asked
        self._problems: list[RegistryProblem] = []
        self._builtin_modules = builtin_modules
        self._builtins_imported: set[str] = set()
        self._loaded = False
        self._loading = False
        self._lock = threading.RLock()

    def register(self, cls: A, *, package: str | None = None) -> A:
        """Add an action; a second action with the same kind and name is an error.
        ``package`` is where it comes from (default: the distribution of its module)."""
        _check_kind(cls)
        key = (cls.kind, cls.name)
        existing = self._actions.get(key)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"action {cls.kind}/{cls.name} registered twice: {_qualified(existing)} "
                f"(package {self._package(key)}) and {_qualified(cls)}"
            )
        self._actions[key] = cls
        if package is not None:
            self._packages[key] = package
        return cls

    def _package(self, key: tuple[str, str]) -> str:
        if key not in self._packages:
            self._packages[key] = _module_package(self._actions[key].__module__)
        return self._packages[key]

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded or self._loading:  # _loading: a plugin's import asked for an action
                return
            self._loading = True
            try:
                with _importing():
                    for module in self._builtin_modules:
                        self._import_builtin(module)
                    for ep in entry_points(group=ENTRY_POINT_GROUP):
                        self._load_entry_point(ep)
            finally:
                self._loading = False
                self._loaded = True

    def _import_builtin(self, module: str) -> None:
        """Import a built-in module (within ``_importing``) and add the actions it declares."""
        importlib.import_module(module)  # a failure here is a bug in kubernaut itself
        for cls in _declared_in(module):
            self.register(cls, package=BUILTIN_PACKAGE)
        self._builtins_imported.add(module)

    def _builtin(self, kind: str, name: str) -> ActionClass | None:
        """A built-in action from its own module alone. The same answer as after loading
        everything: a built-in always keeps its name, a plugin cannot take it."""
        module = BUILTIN_ACTIONS.get((kind, name))
        if module is None or module not in self._builtin_modules:
            return None
        with self._lock:
            if self._loading:  # a plugin's import asked: the full load is under way
                return None
            if module not in self._builtins_imported:
                with _importing():
                    self._import_builtin(module)
        found = self._actions.get((kind, name))
        return found if found is not None and found.__module__ == module else None

    def _load_entry_point(self, ep: EntryPoint) -> None:
        where, package = f"{ep.name} = {ep.value}", _entry_point_package(ep)
        start = len(_DECLARED)
        try:
            obj = ep.load()
        except Exception as exc:
            self._problem(where, package, f"cannot be loaded: {type(exc).__name__}: {exc}")
            return
        # What this import declared, plus what an earlier import of the same module did.
        found = [cls for cls, _ in _DECLARED[start:]]
        if inspect.ismodule(obj):
            found = [*_declared_in(obj.__name__), *found]
            if not found:
                self._problem(where, package, "the module declares no action (decorate them with @register)")
        elif inspect.isclass(obj) and issubclass(obj, Action):
            found = [obj, *found]
        else:
            self._problem(where, package, f"names {obj!r}, which is neither an Action class nor a module")
            return
        for cls in dict.fromkeys(found):  # in order, once each
            self._add_plugin_action(cls, where, package)

    def _add_plugin_action(self, cls: ActionClass, where: str, package: str) -> None:
        try:
            _check_kind(cls)
        except ValueError as exc:
            self._problem(where, package, f"{exc}; skipped")
            return
        key = (cls.kind, cls.name)
        existing = self._actions.get(key)
        if existing is not None and existing is not cls:
            self._problem(
                where,
                package,
                f"action {cls.kind}/{cls.name} ({_qualified(cls)}) clashes with {cls.kind}/{cls.name} of "
                f"package {self._package(key)} ({_qualified(existing)}); it was skipped: give it "
                "another name (prefix it with your organisation's, e.g. acme_restart_pod)",
            )
            return
        self.register(cls, package=package)

    def _problem(self, where: str, package: str, message: str) -> None:
        problem = RegistryProblem(where, package, message)
        log.error("kubernaut: %s", problem)
        self._problems.append(problem)

    @property
    def problems(self) -> list[RegistryProblem]:
        """Entry points that were skipped, with their package and why."""
        self._ensure_loaded()
        return list(self._problems)

    def package_of(self, kind: str, name: str) -> str:
        """The package an action comes from: ``kubernaut (built-in)`` or ``<dist> <version>``."""
        self.get(kind, name)
        return self._package((kind, name))

    def get(self, kind: str, name: str) -> ActionClass:
        if not self._loaded and (builtin := self._builtin(kind, name)) is not None:
            return builtin
        self._ensure_loaded()
        try:
            return self._actions[(kind, name)]
        except KeyError:
            if kind not in ACTION_KINDS:
                raise UnknownAction(kind, name, []) from None
            raise UnknownAction(kind, name, self.names(kind)) from None

    def names(self, kind: str) -> list[str]:
        self._ensure_loaded()
        return sorted(n for k, n in self._actions if k == kind)

    def all(self) -> list[ActionClass]:
        self._ensure_loaded()
        return [self._actions[k] for k in sorted(self._actions)]


registry = ActionRegistry()


def register(cls: A) -> A:
    """Class decorator declaring an action (built-in modules and plugin modules). Outside
    of a registry's loading, e.g. in a script, it registers into the default registry at once.
    During loading it never raises: the loading registry reports a bad or clashing class."""
    _DECLARED.append((cls, sys.modules.get(cls.__module__)))
    if not _IMPORTING.get():
        registry.register(cls)
    return cls
