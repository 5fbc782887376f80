"""Checks beyond the schema: actions exist and accept their parameters, step names and
dependencies are consistent, and Jinja texts compile and refer only to known things.

Each check returns ``Problem`` records (field path + message); the loader turns them
into file/line errors. Checks run on every step that validated, so one bad step does
not hide the problems of the others.
"""

from __future__ import annotations

import difflib
import functools
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import UnionType
from typing import Any

from pydantic import BaseModel, ValidationError

from kubernaut.actions.base import ActionParams
from kubernaut.actions.registry import ActionRegistry, UnknownAction
from kubernaut.rendering import is_templated
from kubernaut.templates.errors import FieldPath
from kubernaut.templates.jinja_refs import CONTEXT_NAMES, Analysis, analyze_condition, analyze_template
from kubernaut.templates.model import Rollback, Step, effective_dependencies


@dataclass(frozen=True)
class Problem:
    path: FieldPath
    message: str
    at_key: bool = False  # point at the key (e.g. an unknown field) rather than its value
    line_in_value: int = 0  # 1-based line inside a multi-line string value, 0 = its start


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return is_templated(value)
    if isinstance(value, Mapping):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_template(v) for v in value)
    return False


def _strings(value: Any, path: FieldPath) -> Iterator[tuple[FieldPath, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, (*path, str(k)))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def _type_candidates(tp: Any) -> list[Any]:
    """Flatten Annotated/Optional/Union into the concrete types they allow."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _type_candidates(typing.get_args(tp)[0])
    if origin is typing.Union or origin is UnionType:
        return [c for a in typing.get_args(tp) for c in _type_candidates(a)]
    return [tp]


def field_names(model: type[BaseModel], path: FieldPath) -> list[str]:
    """Field names of the model found at ``path`` below ``model`` (for suggestions)."""
    current: list[Any] = [model]
    for part in path:
        nxt: list[Any] = []
        for tp in (c for t in current for c in _type_candidates(t)):
            origin = typing.get_origin(tp)
            if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
                if part in tp.model_fields:
                    nxt.append(tp.model_fields[part].annotation)
            elif origin is list and isinstance(part, int):
                nxt.append(typing.get_args(tp)[0])
            elif origin is dict and isinstance(part, str):
                nxt.append(typing.get_args(tp)[1])
        current = nxt
    for tp in (c for t in current for c in _type_candidates(t)):
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return list(tp.model_fields)
    return []


@functools.cache
def _param_names(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(f.alias or name for name, f in model.model_fields.items())


@functools.cache  # per model class: every step of every template asks again
def _accepted_names(model: type[BaseModel]) -> frozenset[str]:
    """Every key the model accepts at its top level: field names and their aliases."""
    names: set[str] = set()
    by_name = bool(model.model_config.get("populate_by_name") or model.model_config.get("validate_by_name"))
    for name, f in model.model_fields.items():
        aliases = {a for a in (f.alias, f.validation_alias) if isinstance(a, str)}
        names |= aliases if aliases and not by_name else {name, *aliases}
    return frozenset(names)


def _unknown_parameter(field: str, choices: list[str], path: FieldPath, label: str) -> Problem:
    hint = did_you_mean(field, choices)
    # With a suggestion the message stays short; without one, list what the action accepts.
    known = "" if hint else f" (parameters: {', '.join(choices) or 'none'})"
    return Problem((*path, field), f"unknown parameter {field!r} of {label}{hint}{known}", at_key=True)


def _unknown_nested(params_model: type[ActionParams], loc: FieldPath, path: FieldPath, label: str) -> Problem:
    if len(loc) == 1:
        return _unknown_parameter(str(loc[0]), list(_param_names(params_model)), path, label)
    hint = did_you_mean(str(loc[-1]), field_names(params_model, loc[:-1]))
    return Problem((*path, *loc), f"unknown field {loc[-1]!r} in a parameter of {label}{hint}", at_key=True)


def check_action_params(
    params_model: type[ActionParams], params: dict[str, Any], path: FieldPath, label: str
) -> list[Problem]:
    """Validate literal parameter values; a value holding a Jinja template is checked at run
    time. Parameter names are known now whatever the value, so an unknown one is always an
    error: it is checked before and apart from pydantic, whose other errors (or a failing
    model validator) on templated values are skipped."""
    problems: list[Problem] = []
    reported: set[tuple[str | int, ...]] = set()
    if params_model.model_config.get("extra") == "forbid":
        accepted = _accepted_names(params_model)
        for key in params:
            if str(key) not in accepted:
                problems.append(_unknown_parameter(str(key), list(_param_names(params_model)), path, label))
                reported.add((str(key),))
    try:
        params_model.model_validate(params)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
            field = loc[0] if loc else None
            if err["type"] == "extra_forbidden":
                if loc not in reported:
                    problems.append(_unknown_nested(params_model, loc, path, label))
            elif field is None and _has_template(params):
                continue  # a model-level rule may depend on values only known after rendering
            elif isinstance(field, str) and field in params and _has_template(params[field]):
                continue
            elif err["type"] == "missing":
                what = "parameter" if len(loc) == 1 else "field"
                message = f"missing required {what} {loc[-1]!r} of {label}"
                problems.append(Problem((*path, *loc[:-1]), message, at_key=True))
            else:
                problems.append(Problem((*path, *loc), f"{humanize(err)} (for {label})"))
    return problems


def humanize(err: Mapping[str, Any]) -> str:
    """Pydantic's message, phrased as what was expected and what was found."""
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    if msg.startswith("Assertion failed, "):
        return msg[len("Assertion failed, ") :]
    msg = msg.replace("Input should be", "expected", 1)
    value = err.get("input")
    if isinstance(value, str | int | float | bool) or value is None:
        msg += f", got {value!r}"
    elif isinstance(value, dict):
        msg += ", got a mapping"
    elif isinstance(value, list):
        msg += ", got a list"
    return msg


def _ancestors(deps: dict[str, list[str]]) -> dict[str, set[str]]:
    memo: dict[str, set[str]] = {}

    def visit(name: str, trail: frozenset[str]) -> set[str]:
        if name in memo:
            return memo[name]
        out: set[str] = set()
        for d in deps.get(name, []):
            if d in deps and d not in trail:
                out |= {d} | visit(d, trail | {d})
        memo[name] = out
        return out

    return {name: visit(name, frozenset({name})) for name in deps}


def find_cycles(deps: dict[str, list[str]]) -> list[list[str]]:
    """Each cycle once, as ``[a, b, a]`` meaning a depends on b depends on a."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for d in deps.get(name, []):
            if d not in deps:
                continue
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d) :], d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[name] = 2

    for name in deps:
        if name not in state:
            visit(name)
    return cycles


@dataclass
class StepChecker:
    """Checks all steps of one template. ``raw_names`` has every step's name as written
    (None where missing), ``steps`` only those that passed schema validation."""

    steps: list[tuple[int, Step]]
    raw_names: list[str | None]
    param_names: set[str]
    registry: ActionRegistry

    def run(self) -> list[Problem]:
        problems = self._names_and_dependencies()
        names = [n for n in self.raw_names if n is not None]
        # The graph is only meaningful when every step validated and names are unique.
        complete = len(self.steps) == len(self.raw_names) and len(set(names)) == len(names)
        upstream: dict[str, set[str]] | None = None
        if complete:
            deps = effective_dependencies([s for _, s in self.steps])
            problems += self._cycles(deps)
            upstream = _ancestors(deps)
        for index, step in self.steps:
            problems += self._action(index, step)
            problems += self._jinja(index, step, upstream)
        return problems

    def _names_and_dependencies(self) -> list[Problem]:
        problems: list[Problem] = []
        first: dict[str, int] = {}
        for i, name in enumerate(self.raw_names):
            if name is None:
                continue
            if name in first:
                problems.append(
                    Problem(("steps", i, "name"), f"duplicate step name {name!r} (also steps[{first[name]}])")
                )
            else:
                first[name] = i
        known = [n for n in self.raw_names if n is not None]
        for i, step in self.steps:
            if step.depends_on is not None and step.parallel:
                problems.append(
                    Problem(
                        ("steps", i, "parallel"),
                        "`parallel` cannot be combined with `depends_on`: "
                        "parallel means 'same upstream as the previous step'",
                    )
                )
            for j, dep in enumerate(step.depends_on or []):
                if dep == step.name:
                    problems.append(Problem(("steps", i, "depends_on", j), "a step cannot depend on itself"))
                elif dep not in first:
                    problems.append(
                        Problem(
                            ("steps", i, "depends_on", j), f"unknown step {dep!r}{did_you_mean(dep, known)}"
                        )
                    )
        return problems

    def _cycles(self, deps: dict[str, list[str]]) -> list[Problem]:
        index = {step.name: i for i, step in self.steps}
        return [
            Problem(("steps", index[cycle[0]], "depends_on"), "dependency cycle: " + " -> ".join(cycle))
            for cycle in find_cycles(deps)
        ]

    def _action(self, i: int, step: Step) -> list[Problem]:
        path: FieldPath = ("steps", i, "action")
        try:
            cls = self.registry.get(step.action.type, step.action.action)
        except UnknownAction as exc:
            return [Problem((*path, "action"), str(exc))]
        label = f"{step.action.type}/{step.action.action}"
        problems = check_action_params(cls.Params, step.action.parameters, (*path, "parameters"), label)
        if isinstance(step.rollback, Rollback):
            problems += self._rollback(i, step, step.rollback)
        return problems

    def _rollback(self, i: int, step: Step, rollback: Rollback) -> list[Problem]:
        path: FieldPath = ("steps", i, "rollback")
        kind = rollback.type or step.action.type
        try:
            cls = self.registry.get(kind, rollback.action)
        except UnknownAction as exc:
            return [Problem((*path, "action"), f"rollback: {exc}")]
        label = f"rollback action {kind}/{rollback.action}"
        if rollback.parameters is None:
            # Inherits the step's parameters; errors point at the rollback since that's what to fix.
            return [
                Problem(path, f"{p.message} (inherited from the step's parameters; set rollback.parameters)")
                for p in check_action_params(cls.Params, step.action.parameters, path, label)
            ]
        return check_action_params(cls.Params, rollback.parameters, (*path, "parameters"), label)

    def _jinja(self, i: int, step: Step, upstream: dict[str, set[str]] | None) -> list[Problem]:
        texts: list[tuple[FieldPath, str, bool]] = [
            (p, s, False) for p, s in _strings(step.action.parameters, ("steps", i, "action", "parameters"))
        ]
        if isinstance(step.rollback, Rollback) and step.rollback.parameters:
            texts += [
                (p, s, False)
                for p, s in _strings(step.rollback.parameters, ("steps", i, "rollback", "parameters"))
            ]
        texts += [(("steps", i, "conditions", j), c, True) for j, c in enumerate(step.conditions)]
        problems: list[Problem] = []
        for path, text, is_condition in texts:
            if not is_condition and not is_templated(text):
                continue
            found = analyze_condition(text) if is_condition else analyze_template(text)
            if found.error is not None:
                problems.append(Problem(path, found.error, line_in_value=found.error_line))
            else:
                problems += self._references(path, found, step, upstream)
        return problems

    def _references(
        self, path: FieldPath, refs: Analysis, step: Step, upstream: dict[str, set[str]] | None
    ) -> list[Problem]:
        problems = [
            Problem(
                path,
                f"unknown name {n!r}{did_you_mean(n, list(CONTEXT_NAMES))} (available: alert, params, steps)",
            )
            for n in sorted(refs.names - set(CONTEXT_NAMES))
        ]
        for p in sorted(refs.params - self.param_names):
            known = ", ".join(sorted(self.param_names)) or "none declared"
            problems.append(
                Problem(
                    path,
                    f"unknown template parameter 'params.{p}'"
                    f"{did_you_mean(p, sorted(self.param_names))} (parameters: {known})",
                )
            )
        known_steps = [n for n in self.raw_names if n is not None]
        for s in sorted(refs.steps):
            if s not in known_steps:
                problems.append(
                    Problem(path, f"unknown step {s!r} in steps[...]{did_you_mean(s, known_steps)}")
                )
            elif s == step.name:
                problems.append(Problem(path, f"step {s!r} cannot use its own result"))
            elif upstream is not None and s not in upstream.get(step.name, set()):
                problems.append(
                    Problem(
                        path,
                        f"step {s!r} is not upstream of {step.name!r}, so its result is not available; "
                        f"add it to depends_on (directly or through another step)",
                    )
                )
        return problems


def check_target(raw: Any, param_names: set[str]) -> list[Problem]:
    """The references of a template's ``target:`` (rendered by the intake with ``alert`` and
    ``params`` only, before any step has run), so a typo fails ``kubernaut validate`` instead
    of deciding every matching alert ``no_target``."""
    if not isinstance(raw, dict):
        return []
    problems: list[Problem] = []
    for key in ("kind", "namespace", "name"):
        text = raw.get(key)
        if not isinstance(text, str) or not is_templated(text):
            continue
        path: FieldPath = ("target", key)
        found = analyze_template(text)
        if found.error is not None:
            continue  # the schema's own check reports the syntax error
        for n in sorted(found.names - {"alert", "params"}):
            hint = "step results do not exist yet" if n == "steps" else "available: alert, params"
            problems.append(Problem(path, f"unknown name {n!r} in the target ({hint})"))
        for name in sorted(found.params - param_names):
            known = ", ".join(sorted(param_names)) or "none declared"
            problems.append(
                Problem(
                    path,
                    f"unknown template parameter 'params.{name}'"
                    f"{did_you_mean(name, sorted(param_names))} (parameters: {known})",
                )
            )
        if found.steps:
            problems.append(
                Problem(path, "the target is decided before any step runs: steps[...] is not available")
            )
    return problems
