"""Action lookup by (kind, name). Built-ins register on import; user packages through
the ``kubernaut.actions`` entry-point group (each entry point names an Action class or a
module whose import registers actions)."""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
from importlib.metadata import entry_points
from typing import Any, TypeVar

from kubernaut.actions.base import ACTION_KINDS, Action

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "kubernaut.actions"
BUILTIN_MODULES = (
    "kubernaut.actions.kubernetes",
    "kubernaut.actions.k8s_workloads",
    "kubernaut.actions.k8s_nodes",
    "kubernaut.actions.k8s_config",
    "kubernaut.actions.k8s_network",
    "kubernaut.actions.k8s_storage",
    "kubernaut.actions.k8s_generic",
    "kubernaut.actions.monitoring",
    "kubernaut.actions.custom",
    "kubernaut.actions.monitoring_prometheus",
    "kubernaut.actions.monitoring_alertmanager",
    "kubernaut.actions.monitoring_notify",
    "kubernaut.actions.custom_http",
    "kubernaut.actions.custom_script",
)

A = TypeVar("A", bound=type[Action[Any]])


class UnknownAction(LookupError):
    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(
            f"unknown {kind} action {name!r}{hint} (known {kind} actions: {', '.join(sorted(known))})"
        )
        self.kind, self.name = kind, name


class ActionRegistry:
    def __init__(self, *, builtin_modules: tuple[str, ...] = BUILTIN_MODULES) -> None:
        self._actions: dict[tuple[str, str], type[Action[Any]]] = {}
        self._builtin_modules = builtin_modules
        self._loaded = False

    def register(self, cls: A) -> A:
        """Class decorator; a second action with the same kind and name is an error."""
        if cls.kind not in ACTION_KINDS:
            raise ValueError(f"{cls.__qualname__}: kind must be one of {ACTION_KINDS}, got {cls.kind!r}")
        key = (cls.kind, cls.name)
        existing = self._actions.get(key)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"action {cls.kind}/{cls.name} registered twice: "
                f"{existing.__module__}.{existing.__qualname__} and {cls.__module__}.{cls.__qualname__}"
            )
        self._actions[key] = cls
        return cls

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not hide the built-ins
                log.error("kubernaut: cannot load action entry point %s (%s): %s", ep.name, ep.value, exc)
                continue
            if inspect.isclass(obj) and issubclass(obj, Action):
                self.register(obj)

    def get(self, kind: str, name: str) -> type[Action[Any]]:
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

    def all(self) -> list[type[Action[Any]]]:
        self._ensure_loaded()
        return [self._actions[k] for k in sorted(self._actions)]


registry = ActionRegistry()
register = registry.register
