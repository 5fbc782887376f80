"""Parse time: a worker parsing the entry file for one task (Airflow's parsing context names
the DAG) builds only that DAG, from its template's file alone when that gives the same DAG as
the full parse; the entry file's import leaves the kubernetes client unloaded; the one-pass
YAML builder gives what PyYAML's constructor gives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubernaut.templates import loader
from kubernaut.templates.yaml_lines import load_yaml
from tests.conftest import REPO

ENTRY = REPO / "dags" / "kubernaut_dags.py"
SHIPPED = sorted(p.stem for p in (REPO / "templates").glob("*.yaml"))
ASSESSMENT = "kubernaut_assessment"  # the entry file's own DAG besides the templates'

SMALL = """\
name: {name}
description: {description}
alert_types: [Small]
steps:
  - name: note
    action: {{type: custom, action: log, parameters: {{message: "{{{{ alert.name }}}}"}}}}
"""


def dag_id(name: str) -> str:
    return "kubernaut_" + name.replace("-", "_")


@pytest.fixture
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "templates"
    shutil.copytree(REPO / "templates", directory)
    monkeypatch.setenv("KUBERNAUT_TEMPLATES_DIR", str(directory))
    monkeypatch.setenv("KUBERNAUT_TEMPLATE_CACHE", "off")  # these tests count the files validated
    return directory


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The template files validated (every validation goes through loader._load_text)."""
    paths: list[Path] = []
    real = loader._load_text

    def spy(path: Path, text: str, registry: Any) -> Any:
        paths.append(path)
        return real(path, text, registry)

    monkeypatch.setattr(loader, "_load_text", spy)
    return paths


def parse(dag: str | None = None) -> Any:
    """The entry file through Airflow's DagBag, as the DAG processor (no context) or a worker
    starting a task of ``dag`` parses it."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.context import (
        _AIRFLOW_PARSING_CONTEXT_DAG_ID,
        _AIRFLOW_PARSING_CONTEXT_TASK_ID,
    )

    if dag is None:
        return DagBag(str(ENTRY))
    # The variables the task runner sets (its context manager leaves them set afterwards).
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID, dag)
        mp.setenv(_AIRFLOW_PARSING_CONTEXT_TASK_ID, "any")
        return DagBag(str(ENTRY), safe_mode=False, load_op_links=False)


def shape(dag: Any) -> dict[str, Any]:
    return {t.task_id: (type(t).__name__, sorted(t.upstream_task_ids)) for t in dag.tasks}


def test_parse_for_one_task_loads_and_builds_only_that_template(templates: Path, loaded: list[Path]) -> None:
    full = parse()
    assert sorted(full.dags) == sorted([ASSESSMENT, *(dag_id(n) for n in SHIPPED)])
    for name in SHIPPED:
        loaded.clear()
        bag = parse(dag_id(name))
        assert list(bag.dags) == [dag_id(name)] and not bag.import_errors
        assert loaded == [templates / f"{name}.yaml"]  # not the other templates
        assert shape(bag.dags[dag_id(name)]) == shape(full.dags[dag_id(name)])


def test_file_named_otherwise_falls_back_to_loading_all(templates: Path, loaded: list[Path]) -> None:
    (templates / "zz-misnamed.yaml").write_text(SMALL.format(name="renamed-one", description="x"))
    bag = parse(dag_id("renamed-one"))
    assert list(bag.dags) == [dag_id("renamed-one")] and not bag.import_errors
    assert len(loaded) == len(SHIPPED) + 1


def test_an_earlier_file_claiming_the_name_wins_as_in_the_full_parse(
    templates: Path, loaded: list[Path]
) -> None:
    # The first file (in name order) keeps a name; the later one is a load error.
    (templates / "a-first.yaml").write_text(SMALL.format(name="web-fix", description="from a-first"))
    (templates / "web-fix.yaml").write_text(SMALL.format(name="web-fix", description="from web-fix"))
    assert parse().dags[dag_id("web-fix")].description == "from a-first"
    loaded.clear()
    bag = parse(dag_id("web-fix"))
    assert bag.dags[dag_id("web-fix")].description == "from a-first"
    assert len(loaded) > 1  # web-fix.yaml alone would have given the other DAG


def test_parse_for_a_broken_template_says_why(templates: Path) -> None:
    (templates / "pod-crash-recovery.yaml").write_text(
        "name: pod-crash-recovery\nalert_types: [X]\nsteps:\n  - name: a\n"
        "    action: {type: kubernetes, action: restrat_pod, parameters: {}}\n"
    )
    bag = parse(dag_id("pod-crash-recovery"))
    assert not bag.dags
    [(path, error)] = bag.import_errors.items()
    assert path.endswith("kubernaut_dags.py")
    assert "DAG kubernaut_pod_crash_recovery: template 'pod-crash-recovery' failed to load" in error
    assert "pod-crash-recovery.yaml:5:" in error and "did you mean 'restart_pod'" in error
    # The DAG processor (no parsing context) still loads the valid ones from this file.
    full = parse()
    assert dag_id("pod-crash-recovery") not in full.dags and dag_id("rollout-restart") in full.dags
    assert not full.import_errors


def test_template_name_reverses_the_dag_id() -> None:
    from kubernaut.factory import template_name

    assert template_name("kubernaut_pod_crash_recovery") == "pod-crash-recovery"
    assert template_name("kubernaut_a1") == "a1" and template_name("kubernaut_x__y") == "x--y"
    for other in ("other_dag", "kubernaut_", "kubernaut_Bad", "kubernaut_x_", "kubernaut_" + "a" * 64):
        assert template_name(other) is None, other


def _modules_after(code: str, templates_dir: Path, cache: Path | None = None) -> dict[str, Any]:
    script = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "before = set(sys.modules)\n"
        f"{code}\n"
        "new = sorted(set(sys.modules) - before)\n"
        "print(json.dumps({'dags': sorted(bag.dags), 'errors': list(bag.import_errors), 'new': new}))\n"
    )
    # Cache off unless given: a warm cache spares the DAG processor the action modules (and the registry).
    env = {
        **os.environ,
        "KUBERNAUT_TEMPLATES_DIR": str(templates_dir),
        "KUBERNAUT_TEMPLATE_CACHE": str(cache) if cache else "off",
    }
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _parse_code(for_task: bool) -> str:
    """The DagBag of the entry file as the DAG processor, or a worker starting a node-not-ready
    task, builds it."""
    if not for_task:
        return f"bag = DagBag({str(ENTRY)!r})"
    return (
        "from airflow.sdk.definitions._internal.dag_parsing_context import "
        "_airflow_parsing_context_manager as ctx\n"
        f"with ctx(dag_id={dag_id('node-not-ready')!r}, task_id='drain'):\n"
        f"    bag = DagBag({str(ENTRY)!r}, safe_mode=False)"
    )


@pytest.mark.parametrize("for_task", [False, True], ids=["dag-processor", "worker"])
def test_parsing_the_entry_file_does_not_load_the_kubernetes_client(for_task: bool) -> None:
    code = _parse_code(for_task)
    result = _modules_after(code, REPO / "templates")
    expected = [dag_id("node-not-ready")] if for_task else sorted([ASSESSMENT, *(dag_id(n) for n in SHIPPED)])
    assert result["dags"] == expected and not result["errors"]
    assert "kubernaut.factory" in result["new"]  # the parse did import kubernaut
    # A worker imports only the action modules of its template's actions (and theirs).
    assert ("kubernaut.actions.kubernetes.storage" in result["new"]) is not for_task
    kube = [m for m in result["new"] if m.split(".")[0] == "kubernetes" or m.startswith("kubernaut.kube.")]
    # names.py: DNS-1123 checks; quantity.py: parses a quota's limits; errors.py: the KubeError
    # classes the action contract translates; none of them imports the client
    assert set(kube) <= {"kubernaut.kube.names", "kubernaut.kube.quantity", "kubernaut.kube.errors"}


def test_builtin_action_map_matches_what_the_modules_declare() -> None:
    from kubernaut.actions.registry import BUILTIN_ACTIONS, BUILTIN_PACKAGE, registry

    declared = {
        (cls.kind, cls.name): cls.__module__
        for cls in registry.all()
        if registry.package_of(cls.kind, cls.name) == BUILTIN_PACKAGE
    }
    assert declared == BUILTIN_ACTIONS  # a new built-in action: add it to BUILTIN_ACTIONS


def test_one_builtin_lookup_imports_only_its_module() -> None:
    script = (
        "import json, sys\n"
        "from kubernaut.actions.registry import ActionRegistry\n"
        "reg = ActionRegistry()\n"
        "cls = reg.get('custom', 'log')\n"
        "mods = sorted(m for m in sys.modules if m.startswith('kubernaut.actions.'))\n"
        "print(json.dumps([cls.__module__, reg.package_of('custom', 'log'), mods]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    module, package, imported = json.loads(out.stdout.strip().splitlines()[-1])
    assert module == "kubernaut.actions.custom" and package == "kubernaut (built-in)"
    assert not [m for m in imported if m.startswith("kubernaut.actions.kubernetes.")]


def test_a_kubernetes_lookup_imports_only_its_own_action_module() -> None:
    """The kubernetes package holds one module per kind of object: importing it (which importing
    any of them does) must not import the others."""
    script = (
        "import json, sys\n"
        "from kubernaut.actions.registry import BUILTIN_MODULES, ActionRegistry\n"
        "cls = ActionRegistry().get('kubernetes', 'drain_node')\n"
        "print(json.dumps([cls.__module__, sorted(m for m in BUILTIN_MODULES if m in sys.modules)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    module, imported = json.loads(out.stdout.strip().splitlines()[-1])
    assert module == "kubernaut.actions.kubernetes.nodes" and imported == [module]


def test_a_lookup_that_misses_the_shortcut_loads_everything() -> None:
    from kubernaut.actions import ActionRegistry, UnknownAction

    reg = ActionRegistry()
    with pytest.raises(UnknownAction, match="did you mean 'restart_pod'"):
        reg.get("kubernetes", "restrat_pod")
    assert len(reg.names("kubernetes")) > 20


def test_action_modules_spell_out_the_same_workload_kinds() -> None:
    from kubernaut.actions.kubernetes.rollouts import WorkloadKind
    from kubernaut.kube.workloads import WorkloadKind as KubeWorkloadKind

    assert typing.get_args(WorkloadKind) == typing.get_args(KubeWorkloadKind)


YAML_CASES = [
    "a: 1\nb: {c: 0x1F, d: 1_000, e: .inf, f: on, g: ~, h: 2024-01-01, i: '1', j: !!str 5}\n",
    "1: one\n'1': two\ntrue: t\nnull: n\nt: 12:30:00\nu: 0o17\nv: 017\nw: -.5\n",
    "l: [1, [2, {a: b}]]\nm: |\n  block\n  text\nn: >\n  folded\n",
    "x: &a {k: [1, 2]}\ny: *a\n",  # alias: PyYAML's constructor
    "base: &b {k: 1, j: 2}\nz:\n  <<: *b\n  k: 3\n",  # merge key
    "'<<': quoted\nk: v\n",
    "s: !!set {a, b}\nb: !!binary aGVsbG8=\n",
    "- a\n- {b: c}\n",
    "plain",
]


@pytest.mark.parametrize("text", YAML_CASES)
def test_yaml_data_is_what_pyyaml_builds(text: str) -> None:
    assert load_yaml(text).data == yaml.load(text, Loader=yaml.SafeLoader)


def _duplicates(text: str) -> list[tuple[Any, ...]]:
    return [(d.path, d.position.line, d.first.line) for d in load_yaml(text).duplicates]


def test_yaml_duplicate_keys_and_positions() -> None:
    text = "a:\n  b: 1\n  b: 2\n  c: {d: 1, d: 2}\nlist:\n  - x: 1\n    x: 2\n"
    assert _duplicates(text) == [(("a", "b"), 3, 2), (("a", "c", "d"), 4, 4), (("list", 0, "x"), 7, 6)]
    doc = load_yaml(text)
    assert doc.position(("list", 0, "x")).line == 7 and doc.position(("a", "c"), key=True).line == 4
    # Merged keys are not duplicates of what they merge with; positions come from the file.
    merged = "base: &b {k: 1}\nz:\n  <<: *b\n  k: 2\n"
    assert _duplicates(merged) == [] and load_yaml(merged).position(("z", "k")).line == 4


@pytest.mark.parametrize("for_task", [False, True], ids=["dag-processor", "worker"])
def test_a_parse_of_unchanged_templates_reads_plans_and_imports_no_template_code(
    for_task: bool, tmp_path: Path
) -> None:
    """With the cache warm, a parse builds every DAG from the plans alone: neither the template
    models (pydantic), the loader and its checks, the actions, nor what the tasks import when
    they run (the runner, the history, the configuration)."""
    cache = tmp_path / "cache"
    code = _parse_code(for_task)
    cold = _modules_after(code, REPO / "templates", cache)
    warm = _modules_after(code, REPO / "templates", cache)
    assert warm["dags"] == cold["dags"] and not warm["errors"]
    assert "kubernaut.templates.model" in cold["new"]  # the first parse validated them
    heavy = (
        "kubernaut.templates.model",
        "kubernaut.templates.loader",
        "kubernaut.templates.checks",
        "kubernaut.actions",
        "kubernaut.operators.runner",
        "kubernaut.operators.run_context",
        "kubernaut.history",
        "kubernaut.config",
    )
    assert [m for m in warm["new"] if m.startswith(heavy)] == []
