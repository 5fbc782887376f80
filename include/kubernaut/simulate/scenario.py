"""The scenario file format (docs/simulate.md): a model, and a loader whose errors name the
file, line, column and field, like the template loader's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from kubernaut.durations import parse_duration
from kubernaut.templates.checks import did_you_mean, humanize
from kubernaut.templates.errors import FieldPath, TemplateError, TemplateLoadError, format_path
from kubernaut.templates.model import NAME_PATTERN
from kubernaut.templates.yaml_lines import YamlSyntaxError, load_yaml

SCENARIO_SUFFIXES = (".yaml", ".yml")
WORKLOAD_FAULTS = ("crashloop", "oom", "unready")
ROLLOUT_FAULTS = ("image-pull", "rollout-stuck")
# A StatefulSet or DaemonSet rolled out to a pod template whose pods crash.
SET_ROLLOUT_FAULTS = ("bad-rollout",)
# The application's own rules (kubernaut.sandbox.app_faults): a refused config value rolled out
# as a new ConfigMap/Secret version, a start-up slower than the liveness probe allows.
APP_FAULTS = ("bad-config", "liveness")
FAULT_TYPES = (*WORKLOAD_FAULTS, *ROLLOUT_FAULTS, *SET_ROLLOUT_FAULTS, "node-not-ready", *APP_FAULTS)
SEEDS = ("demo", "none")
VERDICTS = ("FIXED", "NOT FIXED", "ROLLED BACK CLEANLY", "ROLLBACK INCOMPLETE", "CHANGED NOTHING")
STEP_STATUSES = ("success", "skipped", "failed", "not_run", "rejected")
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Verdict = Literal["FIXED", "NOT FIXED", "ROLLED BACK CLEANLY", "ROLLBACK INCOMPLETE", "CHANGED NOTHING"]
StepStatus = Literal["success", "skipped", "failed", "not_run", "rejected"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _seconds(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return parse_duration(value).total_seconds()
    raise ValueError(f"expected a duration like 30s or 2m, got {value!r}")


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0)]


class Fault(_Strict):
    type: str
    namespace: str = "default"
    deployment: str | None = None
    statefulset: str | None = None
    daemonset: str | None = None
    memory: str | None = None
    container: str | None = None
    image: str | None = None
    node: str | None = None
    # bad-config: the ConfigMap or Secret the Deployment reads, and the refused key=value
    configmap: str | None = None
    secret: str | None = None
    key: str | None = None
    value: str | None = None
    # liveness: seconds the application needs before its liveness endpoint answers
    startup: Seconds | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in FAULT_TYPES:
            raise ValueError(
                f"unknown fault type {value!r}{did_you_mean(value, list(FAULT_TYPES))} "
                f"(types: {', '.join(FAULT_TYPES)})"
            )
        return value

    @model_validator(mode="after")
    def _target(self) -> Fault:
        workloads = [k for k in ("deployment", "statefulset", "daemonset") if getattr(self, k)]
        app_fields = ("configmap", "secret", "key", "value", "startup")
        given = [f for f in app_fields if getattr(self, f) is not None]
        if self.type == "bad-config":
            if workloads != ["deployment"] or bool(self.configmap) == bool(self.secret):
                raise ValueError(
                    "the bad-config fault needs `deployment` and one of `configmap`/`secret` (what it reads)"
                )
            if not self.key or self.value is None:
                raise ValueError(
                    "the bad-config fault needs `key` and `value` (the value the application refuses)"
                )
            if self.node or self.memory or self.container or self.image or self.startup is not None:
                raise ValueError(
                    "the bad-config fault takes deployment, configmap/secret, key and value only"
                )
            return self
        if self.type == "liveness":
            if len(workloads) != 1 or self.startup is None or self.startup <= 0:
                raise ValueError(
                    "the liveness fault needs one of deployment/statefulset/daemonset and `startup` "
                    "(how long the application takes to answer its liveness probe, e.g. 60s)"
                )
            if self.node or self.memory or self.container or self.image or len(given) > 1:
                raise ValueError("the liveness fault takes the workload and startup only")
            return self
        if given:
            raise ValueError(
                f"{', '.join(f'`{f}`' for f in given)} apply to the bad-config/liveness faults only, "
                f"not {self.type!r}"
            )
        if self.type == "node-not-ready":
            if not self.node:
                raise ValueError("the node-not-ready fault needs `node`")
            if workloads or self.memory or self.container or self.image:
                raise ValueError("the node-not-ready fault takes `node` only")
        elif self.type == "image-pull":
            if workloads not in (["deployment"], ["statefulset"]):
                raise ValueError(
                    "the image-pull fault rolls out a Deployment or StatefulSet: give `deployment` or "
                    "`statefulset` only"
                )
            if self.node or self.memory:
                raise ValueError(
                    f"the {self.type} fault takes deployment/statefulset, image and container only"
                )
        elif self.type in ROLLOUT_FAULTS:
            if workloads != ["deployment"]:
                raise ValueError(f"the {self.type} fault rolls out a Deployment: give `deployment` only")
            if self.node or self.memory:
                raise ValueError(f"the {self.type} fault takes deployment, image and container only")
        elif self.type in SET_ROLLOUT_FAULTS:
            if len(workloads) != 1 or workloads[0] == "deployment":
                raise ValueError(
                    f"the {self.type} fault rolls out a StatefulSet or DaemonSet: give `statefulset` or "
                    "`daemonset` (for a Deployment: image-pull or rollout-stuck)"
                )
            if self.node or self.memory:
                raise ValueError(
                    f"the {self.type} fault takes statefulset/daemonset, image and container only"
                )
        else:
            if len(workloads) != 1:
                raise ValueError(
                    f"the {self.type} fault needs exactly one of deployment, statefulset, daemonset"
                )
            if self.node:
                raise ValueError(f"`node` applies to the node-not-ready fault only, not {self.type!r}")
            if self.type != "oom" and (self.memory or self.container):
                raise ValueError(f"`memory` and `container` apply to the oom fault only, not {self.type!r}")
            if self.image:
                raise ValueError(
                    "`image` applies to the image-pull, rollout-stuck and bad-rollout faults, "
                    f"not {self.type!r}"
                )
        return self

    @property
    def workload(self) -> tuple[str, str]:
        for kind in ("deployment", "statefulset", "daemonset"):
            name = getattr(self, kind)
            if name:
                return kind, name
        return "", ""

    def describe(self) -> str:
        if self.type == "node-not-ready":
            return f"node-not-ready on node {self.node}"
        kind, name = self.workload
        extra = "".join(
            f" {k}={v}"
            for k, v in (
                ("memory", self.memory),
                ("container", self.container),
                ("image", self.image),
                ("configmap", self.configmap),
                ("secret", self.secret),
                ("key", self.key),
                ("startup", f"{self.startup:g}s" if self.startup is not None else None),
            )
            if v
        )
        return f"{self.type} on {kind} {self.namespace}/{name}{extra}"


class ObjectRef(_Strict):
    kind: str
    namespace: str | None = None
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


class Selection(_Strict):
    kind: str = "Pod"
    namespace: str | None = None
    selector: str | None = None
    # pods only: one of whose containers waits with this reason (e.g. ImagePullBackOff)
    waiting: list[str] = Field(default_factory=list)
    # only objects whose status has this condition True (e.g. Failed for a Job)
    condition: str | None = None


class PodSelection(_Strict):
    namespace: str | None = None
    selector: str | None = None
    node: str | None = None
    created_after: str | None = None  # RFC 3339, e.g. "${now}": only pods created since


class ActionCheck(_Strict):
    action: str
    type: Literal["kubernetes", "monitoring", "custom"] | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class ObjectCheck(_Strict):
    object: ObjectRef
    fields: dict[str, Any] = Field(min_length=1)
    within: Seconds = 30.0


class PodsCheck(_Strict):
    pods: PodSelection
    count: int = Field(ge=0)
    within: Seconds = 30.0


class AbsentCheck(_Strict):
    absent: ObjectRef
    within: Seconds = 30.0


class TargetHealthCheck(_Strict):
    """The effectiveness assessment's own target-health component
    (``kubernaut.triggers.assessment.health_evidence``): ``alert`` for the alert's target."""

    target_health: Literal["alert"] | ObjectRef
    within: Seconds = 30.0


Check = ActionCheck | ObjectCheck | PodsCheck | AbsentCheck | TargetHealthCheck
CHECK_KEYS: dict[str, type[BaseModel]] = {
    "action": ActionCheck,
    "object": ObjectCheck,
    "pods": PodsCheck,
    "absent": AbsentCheck,
    "target_health": TargetHealthCheck,
}


CHECK_FORMS = (
    "{action: ...}, {object: ..., fields: ...}, {pods: ..., count: N}, {absent: ...} "
    "or {target_health: alert}"
)


def _check_form(value: Any) -> str | None:
    """Which form of check this is, by its key (so an error names that form's fields only)."""
    if isinstance(value, dict):
        keys = [k for k in CHECK_KEYS if k in value]
        return f"check:{keys[0]}" if len(keys) == 1 else None
    return next((f"check:{k}" for k, form in CHECK_KEYS.items() if isinstance(value, form)), None)


CheckItem = Annotated[
    Annotated[ActionCheck, Tag("check:action")]
    | Annotated[ObjectCheck, Tag("check:object")]
    | Annotated[PodsCheck, Tag("check:pods")]
    | Annotated[AbsentCheck, Tag("check:absent")]
    | Annotated[TargetHealthCheck, Tag("check:target_health")],
    Discriminator(
        _check_form, custom_error_type="check_form", custom_error_message=f"a check is one of {CHECK_FORMS}"
    ),
]


class NotifiedCheck(_Strict):
    """What the notify sink must have received: requests whose JSON body has each ``body``
    field (dotted path) equal to its value and each ``contains`` field containing its text;
    at least one, or exactly ``count``."""

    path: str | None = None
    body: dict[str, Any] = Field(default_factory=dict)
    contains: dict[str, str] = Field(default_factory=dict)
    count: int | None = Field(default=None, ge=0)


class Expect(_Strict):
    verdict: Verdict | None = None
    steps: dict[str, StepStatus] = Field(default_factory=dict)
    fixed: list[CheckItem] = Field(default_factory=list)
    unchanged: list[ObjectRef] = Field(default_factory=list)
    notified: list[NotifiedCheck] = Field(default_factory=list)


class SeriesFrom(_Strict):
    """A sandbox object's field (a number or a Kubernetes quantity), read at every scrape."""

    kind: str
    namespace: str | None = None
    name: str
    field: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")


class Series(_Strict):
    """One gauge series: ``value``, or ``from`` an object's field plus ``add``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    metric: str = Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    labels: dict[str, str] = Field(default_factory=dict)
    value: float | None = None
    from_: SeriesFrom | None = Field(default=None, alias="from")
    add: float = 0.0

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", name) or name.startswith("__"):
                raise ValueError(f"label name {name!r}: letters, digits and _ (not starting with __)")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Series:
        if (self.value is None) == (self.from_ is None):
            raise ValueError("give exactly one of `value` (a number) and `from` (an object's field)")
        if self.add and self.from_ is None:
            raise ValueError("`add` applies to a series read `from` an object")
        return self


class PrometheusSpec(_Strict):
    series: list[Series] = Field(min_length=1)


class SandboxOptions(_Strict):
    pod_ready_delay: float = Field(default=0.1, ge=0)
    crash_interval: float = Field(default=0.5, gt=0)
    crds: list[str] = Field(default_factory=list)


class Scenario(_Strict):
    description: str = ""
    template: str | None = Field(default=None, pattern=NAME_PATTERN)
    seed: Literal["demo", "none"] = "none"
    objects: list[dict[str, Any]] = Field(default_factory=list)
    sandbox: SandboxOptions = Field(default_factory=SandboxOptions)
    config: dict[str, Any] = Field(default_factory=dict)
    faults: list[Fault] = Field(default_factory=list)
    prometheus: PrometheusSpec | None = None
    bind: dict[str, Selection] = Field(default_factory=dict)
    alert: dict[str, Any]
    params: dict[str, Any] = Field(default_factory=dict)
    fail_at: str | None = None
    reject: list[str] = Field(default_factory=list)
    expect: Expect = Field(default_factory=Expect)

    @field_validator("objects")
    @classmethod
    def _objects(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for obj in value:
            meta = obj.get("metadata")
            if not obj.get("kind") or not isinstance(meta, dict) or not meta.get("name"):
                raise ValueError("every object needs `kind` and `metadata.name` (a Kubernetes manifest)")
        return value

    @field_validator("bind")
    @classmethod
    def _bind(cls, value: dict[str, Selection]) -> dict[str, Selection]:
        for name in value:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) or name == "now":
                raise ValueError(f"bind name {name!r}: letters, digits and _ (and not 'now')")
        return value


@dataclass
class ScenarioFile:
    """A loaded scenario: its name (the file name), the template it is for, the model."""

    path: Path
    name: str
    template: str
    scenario: Scenario
    positions: Any = None  # the YamlDocument, to place later problems (unknown step names ...)

    def error(self, path: FieldPath, message: str) -> TemplateError:
        line = column = 0
        if self.positions is not None:
            pos = self.positions.position(path)
            line, column = pos.line, pos.column
        return TemplateError(str(self.path), line, column, format_path(path), message)


def _data_path(loc: tuple[int | str, ...], data: Any) -> FieldPath:
    """A pydantic ``loc`` as a path in the data (union tags and validator names dropped)."""
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


def _fields_of(data: Any, path: FieldPath) -> list[str]:
    """The fields the mapping at ``path`` may have (for "did you mean")."""
    if len(path) >= 3 and path[:2] == ("expect", "fixed") and isinstance(path[2], int):
        fixed = (data.get("expect") or {}).get("fixed") if isinstance(data.get("expect"), dict) else None
        item = fixed[path[2]] if isinstance(fixed, list) and 0 <= path[2] < len(fixed) else None
        form = CHECK_KEYS.get(_check_form(item) or "", None) if len(path) == 3 else None
        if form is None and isinstance(item, dict) and len(path) == 4:
            key = _check_form(item)
            form = CHECK_KEYS.get((key or ":").split(":", 1)[1])
            sub = form.model_fields.get(str(path[3])) if form else None
            inner = getattr(sub, "annotation", None)
            form = next((a for a in getattr(inner, "__args__", (inner,)) if hasattr(a, "model_fields")), None)
        elif len(path) == 3 and isinstance(item, dict):
            key = _check_form(item)
            form = CHECK_KEYS.get((key or ":").split(":", 1)[1])
        return list(form.model_fields) if form is not None else []
    model: Any = Scenario
    for part in path:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return []
        annotation = fields[part].annotation
        model = next(
            (a for a in (*getattr(annotation, "__args__", ()), annotation) if hasattr(a, "model_fields")),
            None,
        )
    return list(getattr(model, "model_fields", None) or [])


def load_scenario(path: str | Path, template: str | None = None) -> ScenarioFile:
    """Read and validate one scenario file; raise TemplateLoadError with every problem found.
    ``template``: the template its directory names (``scenarios/<template>/``)."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateLoadError(path, [TemplateError(file, 0, 0, "", f"cannot read file: {exc}")]) from exc
    try:
        doc = load_yaml(text)
    except YamlSyntaxError as exc:
        raise TemplateLoadError(
            path, [TemplateError(file, exc.position.line, exc.position.column, "", exc.message)]
        ) from exc
    data = doc.data
    errors: list[TemplateError] = []

    def add(p: FieldPath, message: str, *, at_key: bool = False) -> None:
        pos = doc.position(p, key=at_key)
        errors.append(TemplateError(file, pos.line, pos.column, format_path(p), message))

    for dup in doc.duplicates:
        add(dup.path, f"duplicate key {dup.path[-1]!r} (first defined at line {dup.first.line})", at_key=True)
    if not isinstance(data, dict):
        what = "an empty file" if data is None else f"a {type(data).__name__}"
        add((), f"expected a mapping with alert, faults and expect, got {what}")
        raise TemplateLoadError(path, errors)
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            p = _data_path(err["loc"], data)
            if err["type"] == "missing":
                add(p[:-1], f"missing required field {p[-1]!r}", at_key=True)
            elif err["type"] == "extra_forbidden":
                fields = _fields_of(data, p[:-1])
                add(
                    p,
                    f"unknown field {p[-1]!r}{did_you_mean(str(p[-1]), fields)}"
                    + (f" (fields: {', '.join(fields)})" if fields else ""),
                    at_key=True,
                )
            else:
                add(p, humanize(err))
    name = path.stem
    declared = data.get("template") if isinstance(data.get("template"), str) else None
    if template and declared and declared != template:
        add(("template",), f"names template {declared!r} but the file is in the directory of {template!r}")
    target = declared or template
    if not target:
        add((), "no template: set `template:` or put the file in scenarios/<template-name>/")
    if errors or scenario is None or target is None:
        errors.sort(key=lambda e: (e.line, e.column))
        raise TemplateLoadError(path, errors)
    return ScenarioFile(path, name, target, scenario, doc)


def scenario_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(f for f in directory.iterdir() if f.suffix in SCENARIO_SUFFIXES and f.is_file())


def substitute(value: Any, variables: dict[str, str]) -> Any:
    """``${NAME}`` replaced in every string (text only: nothing is evaluated)."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    return value


def variable_places(value: Any, path: FieldPath = ()) -> list[tuple[FieldPath, str]]:
    """Each ``${NAME}`` written in ``value``, with the path of the string it is in."""
    if isinstance(value, str):
        return [(path, name) for name in VARIABLE.findall(value)]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in variable_places(v, (*path, str(k)))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in variable_places(v, (*path, i))]
    return []
