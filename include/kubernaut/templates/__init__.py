"""Remediation templates: the YAML format, loading with precise errors, and its JSON Schema."""

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
