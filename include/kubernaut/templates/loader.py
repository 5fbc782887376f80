"""Load template files into ``Template`` objects, reporting every problem with its place.

Runs at Airflow DAG-parse time for each file, so it does no network I/O and keeps no
global cache: each call reads the file and the registry as they are now. A caller may pass a
``TemplateCache`` (templates/cache.py): a file whose text validated before, with the same
code and installed packages, is then read back instead of checked again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from kubernaut.actions.registry import ActionRegistry
from kubernaut.actions.registry import registry as default_registry
from kubernaut.templates.checks import Problem, StepChecker, check_target, did_you_mean, field_names, humanize
from kubernaut.templates.errors import FieldPath, TemplateError, TemplateLoadError, format_path
from kubernaut.templates.model import NAME_PATTERN, Step, Template
from kubernaut.templates.names import TEMPLATE_SUFFIXES as TEMPLATE_SUFFIXES  # where they are defined now
from kubernaut.templates.names import template_files as template_files
from kubernaut.templates.yaml_lines import YamlDocument, YamlSyntaxError, load_yaml
from kubernaut.templates.yaml_lines import declared_name as declared_name  # where it is defined now

if TYPE_CHECKING:
    from kubernaut.templates.cache import TemplateCache


@dataclass
class LoadReport:
    templates: list[Template] = field(default_factory=list)
    errors: dict[Path, list[TemplateError]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    # Action plugins that were skipped (broken or clashing entry points): the templates
    # still load, but the installation needs fixing.
    registry_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.registry_problems

    def all_errors(self) -> list[TemplateError]:
        return [e for errors in self.errors.values() for e in errors]


def load_template(
    path: str | Path, *, registry: ActionRegistry = default_registry, cache: TemplateCache | None = None
) -> Template:
    """Load and fully validate one file; raise TemplateLoadError with all its errors."""
    template, errors, _ = (
        _load(Path(path), registry) if cache is None else _load_cached(Path(path), registry, cache)
    )
    if cache is not None:
        cache.save()
    if errors or template is None:
        raise TemplateLoadError(path, errors)
    return template


def load_templates(
    directory: str | Path,
    *,
    registry: ActionRegistry = default_registry,
    cache: TemplateCache | None = None,
    check_plugins: bool = True,
) -> LoadReport:
    """Load every ``*.yaml``/``*.yml`` in ``directory``; broken files are reported, not fatal."""
    return load_paths([Path(directory)], registry=registry, cache=cache, check_plugins=check_plugins)


def load_paths(
    paths: Iterable[str | Path],
    *,
    registry: ActionRegistry = default_registry,
    cache: TemplateCache | None = None,
    check_plugins: bool = True,
) -> LoadReport:
    """Load files and directories; also rejects a template name used by two files.

    ``check_plugins=False`` leaves ``registry_problems`` empty: the caller does not report
    them, and with every template from ``cache`` the action plugins are then not loaded."""
    problems = [str(p) for p in registry.problems] if check_plugins else []
    report = LoadReport(files=template_files(paths), registry_problems=problems)
    first_file: dict[str, Path] = {}
    for path in report.files:
        template, errors, doc = (
            _load(path, registry) if cache is None else _load_cached(path, registry, cache)
        )
        if template is not None and not errors:
            if template.name in first_file:
                if doc is None:  # read back from the cache: load it for the name's position
                    _, _, doc = _load(path, registry)
                pos = doc.position(("name",)) if doc else None
                errors = [
                    TemplateError(
                        str(path),
                        pos.line if pos else 0,
                        pos.column if pos else 0,
                        "name",
                        f"template name {template.name!r} is already used by {first_file[template.name]}; "
                        "names (and so DAG ids) must be unique",
                    )
                ]
            else:
                first_file[template.name] = path
                report.templates.append(template)
        if errors:
            report.errors[path] = errors
    if cache is not None:
        cache.save()
    return report


Loaded = tuple[Template | None, list[TemplateError], YamlDocument | None]


def _read(path: Path) -> str | TemplateError:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return TemplateError(str(path), 0, 0, "", f"cannot read file: {exc}")


def _load(path: Path, registry: ActionRegistry) -> Loaded:
    """Read and validate one file."""
    text = _read(path)
    if isinstance(text, TemplateError):
        return None, [text], None
    return _load_text(path, text, registry)


def _load_cached(path: Path, registry: ActionRegistry, cache: TemplateCache) -> Loaded:
    """Read one file; validate it unless ``cache`` has the template of this very text."""
    text = _read(path)
    if isinstance(text, TemplateError):
        return None, [text], None
    return _load_text_cached(path, text, registry, cache)


def _load_text_cached(path: Path, text: str, registry: ActionRegistry, cache: TemplateCache) -> Loaded:
    cached = cache.lookup(path, text)
    if cached is not None:
        return cached, [], None
    template, errors, doc = _load_text(path, text, registry)
    if template is not None and not errors:
        cache.store(path, text, template)
    return template, errors, doc


def validated(
    path: Path, text: str, *, registry: ActionRegistry = default_registry, cache: TemplateCache | None = None
) -> Template | None:
    """The template this text (read from ``path``) gives when it is valid, else None (its errors
    are the error file's to report). For the DAG factory, which has read the text already."""
    template, errors, _ = (
        _load_text(path, text, registry) if cache is None else _load_text_cached(path, text, registry, cache)
    )
    return template if not errors else None


def _load_text(path: Path, text: str, registry: ActionRegistry) -> Loaded:
    file = str(path)
    try:
        doc = load_yaml(text)
    except YamlSyntaxError as exc:
        return None, [TemplateError(file, exc.position.line, exc.position.column, "", exc.message)], None

    problems: list[Problem] = [
        Problem(
            d.path,
            f"duplicate key {d.path[-1]!r} (first defined at line {d.first.line}); "
            "YAML would silently keep only the last one",
            at_key=True,
        )
        for d in doc.duplicates
    ]
    data = doc.data
    if not isinstance(data, dict):
        what = "an empty file" if data is None else f"a {type(data).__name__}"
        problems.append(Problem((), f"expected a mapping with name, alert_types and steps, got {what}"))
        return None, _to_errors(file, doc, problems), doc

    template: Template | None = None
    try:
        template = Template.model_validate(data, context={"source": path})
        steps = list(enumerate(template.steps))
        param_names = set(template.parameters)
    except ValidationError as exc:
        problems += _schema_problems(exc, data)
        steps = _valid_steps(data.get("steps"))
        raw_params = data.get("parameters")
        param_names = {str(k) for k in raw_params} if isinstance(raw_params, dict) else set()

    raw_steps = data.get("steps")
    raw_names = [
        s.get("name") if isinstance(s, dict) and isinstance(s.get("name"), str) else None
        for s in (raw_steps if isinstance(raw_steps, list) else [])
    ]
    problems += StepChecker(steps, raw_names, param_names, registry).run()
    problems += check_target(data.get("target"), param_names)
    errors = _to_errors(file, doc, problems)
    return (template if not errors else None), errors, doc


def _valid_steps(raw: Any) -> list[tuple[int, Step]]:
    """Steps that pass the schema on their own, so their cross-checks still run."""
    out: list[tuple[int, Step]] = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            out.append((i, Step.model_validate(item)))
        except ValidationError:
            pass
    return out


def _to_errors(file: str, doc: YamlDocument, problems: list[Problem]) -> list[TemplateError]:
    errors = []
    for p in problems:
        path = p.path
        if path and isinstance(path[-1], int) and path not in doc.values:
            # `conditions: "x"` is written as one string but validated as a one-item list.
            if isinstance(doc.values.get(path[:-1]), yaml.ScalarNode):
                path = path[:-1]
        pos = doc.position(path, key=p.at_key)
        line, column = pos.line, pos.column
        if p.line_in_value > 1:
            line, column = doc.value_line_offset(path) + p.line_in_value - 1, 0
        errors.append(TemplateError(file, line, column, format_path(path), p.message))
    errors.sort(key=lambda e: (e.line, e.column))
    return errors


def _data_path(loc: tuple[int | str, ...], data: Any) -> FieldPath:
    """Map a pydantic ``loc`` to a path in the data, dropping union tags and validator
    names (``function-after[...]``) that pydantic inserts; the last part is kept
    even if absent (a missing field)."""
    path: list[str | int] = []
    current = data
    for n, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            current = current[part]
            path.append(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
            path.append(part)
        elif n == len(loc) - 1:
            path.append(part)
    return tuple(path)


def _schema_problems(exc: ValidationError, data: dict[str, Any]) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        path = _data_path(err["loc"], data)
        kind = err["type"]
        if kind == "missing":
            problems.append(Problem(path[:-1], f"missing required field {path[-1]!r}", at_key=True))
        elif kind == "extra_forbidden":
            fields = field_names(Template, path[:-1])
            problems.append(
                Problem(
                    path,
                    f"unknown field {path[-1]!r}{did_you_mean(str(path[-1]), fields)}"
                    + (f" (fields: {', '.join(fields)})" if fields else ""),
                    at_key=True,
                )
            )
        elif kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NAME_PATTERN:
            problems.append(
                Problem(
                    path,
                    "expected a lowercase name of letters, digits and '-' "
                    f"(DNS-1123 label, e.g. pod-crash-recovery), got {err['input']!r}",
                )
            )
        else:
            problems.append(Problem(path, humanize(err)))
    return problems
