"""Import layering of the kubernaut package, read from the source with ``ast``.

Every import counts: at module level, inside functions (lazy) and under ``TYPE_CHECKING``, since
a lazy import is still a dependency (and a cycle held together by one is still a cycle). The
rules: the Kubernetes helpers (``kubernaut.kube``) import nothing above them; the safety policy
is rules over data (no action contract); the layers the triggers run on (waits, services,
triggers) import no actions, operators, DAG factory or intake; the intake does not take its
settings from the DAG factory; and the development tools (sandbox cluster, demo, test kit,
simulator) stay out of every production import path.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "include" / "kubernaut"

# Only these may import the development tools; the CLI delegates to them by a "module:function"
# string (kubernaut.cli._delegate), which is not an import.
DEV_TOOLS = ("kubernaut.sandbox", "kubernaut.demo", "kubernaut.testing", "kubernaut.simulate")
# Launchers of local stacks (the demo's, the end-to-end tests' and benches', `kubernaut stack`,
# the docs' screenshots): they start the sandbox cluster by design, in their own process; no
# Airflow component or intake imports them (``test_production_entry_points_...``).
DEV_STACKS = (
    "kubernaut.live_stack",
    "kubernaut.local_stack",
    "kubernaut.demo_monitoring",
    "kubernaut.ui.screenshots",
    "kubernaut.stack.stack",
    "kubernaut.stack.cli",
)
# What the DAG processor, the workers (Celery too), the triggerer and the api-server (intake and
# UI plugins) import, and the CLI.
PRODUCTION = (
    "kubernaut.factory",
    "kubernaut.operators",
    "kubernaut.triggers",
    "kubernaut.waits",
    "kubernaut.actions",
    "kubernaut.rollback",
    "kubernaut.assessment",
    "kubernaut.history",
    "kubernaut.intake",
    "kubernaut.ui.plugin",
    "kubernaut.ui.app",
    "kubernaut.stack.celery_config",
    "kubernaut.cli",
)
# What the triggerer, a Celery worker and the intake import: never above these layers.
ABOVE_THE_TRIGGERS = (
    "kubernaut.actions",
    "kubernaut.operators",
    "kubernaut.factory",
    "kubernaut.intake",
    "kubernaut.templates",
    "kubernaut.rollback",
    "kubernaut.cli",
)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (``from a.b import c``: a.b, and a.b.c if that is a module)
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            yield Import(module, source, node.lineno)
            for alias in node.names:  # `from kubernaut import policy` imports kubernaut.policy
                candidate = root.parent / Path(*f"{source}.{alias.name}".split("."))
                if candidate.with_suffix(".py").exists() or (candidate / "__init__.py").exists():
                    yield Import(module, f"{source}.{alias.name}", node.lineno)


@functools.cache
def all_imports(root: Path = PACKAGE_DIR) -> list[Import]:
    return [imp for path in sorted(root.rglob("*.py")) for imp in imports_of(path, root)]


def within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    return any(
        name == p or name.startswith(p + ".")
        for p in ((prefixes,) if isinstance(prefixes, str) else prefixes)
    )


def kubernaut_imports(imports: list[Import], importer: tuple[str, ...] | str) -> list[Import]:
    # The bare package (`from kubernaut import x`) is not a layer: x is counted on its own.
    return [
        i
        for i in imports
        if within(i.module, importer) and within(i.target, "kubernaut") and i.target != "kubernaut"
    ]


def violations(root: Path = PACKAGE_DIR) -> dict[str, list[str]]:
    """Each rule's breaking imports (empty lists when the layering holds)."""
    imports = all_imports(root)
    rules: dict[str, list[Import]] = {
        # The Kubernetes helpers take an API client, a deadline, a logger: nothing above them.
        "kube imports only kube and the error base": [
            i
            for i in kubernaut_imports(imports, "kubernaut.kube")
            if not within(i.target, ("kubernaut.kube", "kubernaut.errors"))
        ],
        # Rules over data: what is changed (Target, Bounds) and the configured limits.
        "policy imports no action contract (nor anything that reads the cluster)": [
            i
            for i in kubernaut_imports(imports, "kubernaut.policy")
            if not within(i.target, ("kubernaut.errors", "kubernaut.target", "kubernaut.config"))
        ],
        "waits, services and triggers import nothing above them": [
            i
            for i in kubernaut_imports(
                imports, ("kubernaut.waits", "kubernaut.services", "kubernaut.triggers")
            )
            if within(i.target, ABOVE_THE_TRIGGERS)
        ],
        "the neutral modules import no layer": [
            i
            for i in kubernaut_imports(imports, ("kubernaut.errors", "kubernaut.target", "kubernaut.paths"))
            if not within(i.target, ("kubernaut.errors", "kubernaut.target"))
        ],
        "the intake does not depend on the DAG factory": [
            i for i in kubernaut_imports(imports, "kubernaut.intake") if within(i.target, "kubernaut.factory")
        ],
        "no production module imports the sandbox, demo, test kit or simulator": [
            i for i in imports if within(i.target, DEV_TOOLS) and not within(i.module, DEV_TOOLS + DEV_STACKS)
        ],
    }
    return {rule: [str(i) for i in found] for rule, found in rules.items()}


def test_production_entry_points_never_reach_the_development_tools() -> None:
    """Following every import (lazy ones too) from what the Airflow components import."""
    imports = all_imports()
    graph: dict[str, set[str]] = {}
    for i in imports:
        graph.setdefault(i.module, set()).add(i.target)
    start = sorted(m for m in graph if within(m, PRODUCTION))
    assert "kubernaut.factory" in start and "kubernaut.triggers.wait" in start
    reached_from: dict[str, str] = {m: m for m in start}
    todo = list(start)
    while todo:
        module = todo.pop()
        for target in graph.get(module, ()):
            if within(target, "kubernaut") and target not in reached_from:
                reached_from[target] = module
                todo.append(target)
    leaks = {m: reached_from[m] for m in reached_from if within(m, DEV_TOOLS + DEV_STACKS)}
    assert leaks == {}, "module: reached from"


@pytest.mark.parametrize("rule", list(violations()))
def test_layering(rule: str) -> None:
    assert violations()[rule] == []


def test_the_walk_sees_lazy_type_only_and_relative_imports(tmp_path: Path) -> None:
    """The checks would pass vacuously if the walk missed imports: a fake package with each
    form of import breaks the rules it should."""
    root = tmp_path / "kubernaut"
    (root / "kube").mkdir(parents=True)
    (root / "actions").mkdir()
    for init in (root / "__init__.py", root / "kube" / "__init__.py", root / "actions" / "__init__.py"):
        init.write_text("")
    (root / "actions" / "base.py").write_text("class ActionError(Exception): ...\n")
    (root / "kube" / "lazy.py").write_text("def f():\n    from kubernaut.actions.base import ActionError\n")
    (root / "kube" / "typed.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from kubernaut.actions import base\n"
    )
    (root / "kube" / "relative.py").write_text("from ..actions.base import ActionError\n")
    (root / "policy.py").write_text("import kubernaut.actions.base\n")
    (root / "stack.py").write_text("from kubernaut import demo\n")
    (root / "demo.py").write_text("from kubernaut import sandbox\n")
    found = violations(root)
    assert sorted(found["kube imports only kube and the error base"]) == [
        "kubernaut.kube.lazy:2 imports kubernaut.actions.base",
        "kubernaut.kube.relative:1 imports kubernaut.actions.base",
        "kubernaut.kube.typed:3 imports kubernaut.actions",
        "kubernaut.kube.typed:3 imports kubernaut.actions.base",
    ]
    assert found["policy imports no action contract (nor anything that reads the cluster)"] == [
        "kubernaut.policy:1 imports kubernaut.actions.base"
    ]
    # `from kubernaut import demo` is an import of kubernaut.demo; the demo may use the sandbox.
    assert found["no production module imports the sandbox, demo, test kit or simulator"] == [
        "kubernaut.stack:1 imports kubernaut.demo"
    ]


def test_no_import_cycle_between_the_action_contract_and_the_policy() -> None:
    """actions.base consults the policy; the policy must not reach back, lazily or not."""
    imports = all_imports()
    policy_deps = {i.target for i in imports if within(i.module, "kubernaut.policy")}
    assert not any(within(t, "kubernaut.actions") for t in policy_deps)
    assert any(i.target == "kubernaut.policy" for i in imports if i.module == "kubernaut.actions.base")
