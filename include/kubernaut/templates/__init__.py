"""Remediation templates: the YAML format, loading with precise errors, and its JSON Schema.

The names below are imported on first use: the DAG processor's parse of unchanged templates
needs only ``templates.cache`` and ``templates.names`` (no pydantic models, no YAML)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernaut.templates.errors import TemplateError, TemplateLoadError, format_path
    from kubernaut.templates.loader import LoadReport, load_paths, load_template, load_templates
    from kubernaut.templates.matchers import Matcher
    from kubernaut.templates.model import (
        AlertMatcher,
        Configuration,
        Parameter,
        ParameterError,
        ResolvedRollback,
        Rollback,
        Step,
        StepAction,
        Template,
        effective_dependencies,
    )

_WHERE = {
    "kubernaut.templates.errors": ("TemplateError", "TemplateLoadError", "format_path"),
    "kubernaut.templates.loader": ("LoadReport", "load_paths", "load_template", "load_templates"),
    "kubernaut.templates.matchers": ("Matcher",),
    "kubernaut.templates.model": (
        "AlertMatcher",
        "Configuration",
        "Parameter",
        "ParameterError",
        "ResolvedRollback",
        "Rollback",
        "Step",
        "StepAction",
        "Template",
        "effective_dependencies",
    ),
}
_MODULE = {name: module for module, names in _WHERE.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AlertMatcher",
    "Configuration",
    "LoadReport",
    "Matcher",
    "Parameter",
    "ParameterError",
    "ResolvedRollback",
    "Rollback",
    "Step",
    "StepAction",
    "Template",
    "TemplateError",
    "TemplateLoadError",
    "effective_dependencies",
    "format_path",
    "load_paths",
    "load_template",
    "load_templates",
]
