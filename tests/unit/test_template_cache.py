"""The cache of validated templates (templates/cache.py): DAGs built from it equal those
built without it; an edited, broken or renamed template is never served stale; a cache
written by other code, torn, foreign or shared by concurrent writers is never trusted."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from airflow.serialization.serialized_objects import DagSerialization

from kubernaut.factory import build_dags
from kubernaut.templates import cache as cache_module
from kubernaut.templates.cache import CACHE_ENV, DEFAULT_SUBDIR, TemplateCache, cache_dir, code_stamp
from kubernaut.templates.loader import load_template, load_templates
from tests.conftest import REPO

SMALL = """\
name: small
description: first version
alert_types: [Small]
parameters:
  replicas: {type: integer, default: 2}
steps:
  - name: look
    action: {type: custom, action: log, parameters: {message: "{{ alert.namespace }}"}}
  - name: scale
    action: {type: kubernetes, action: scale_deployment,
             parameters: {namespace: demo, deployment: web, replicas: "{{ params.replicas }}"}}
"""


def serialized(dags: dict[str, Any]) -> dict[str, str]:
    return {dag_id: json.dumps(DagSerialization.to_dict(dag), sort_keys=True) for dag_id, dag in dags.items()}


@pytest.fixture
def repo_templates(tmp_path: Path) -> Path:
    directory = tmp_path / "templates"
    shutil.copytree(REPO / "templates", directory)
    return directory


def test_dags_from_the_cache_equal_those_built_without_it(repo_templates: Path, tmp_path: Path) -> None:
    uncached = build_dags(repo_templates, cache=None)
    assert len(uncached) == len(list(repo_templates.glob("*.yaml")))

    cold = TemplateCache(tmp_path / "cache")
    assert serialized(build_dags(repo_templates, cache=cold)) == serialized(uncached)
    # Each file: no plan of its DAG, no template: validated, then both are cached.
    assert (cold.hits, cold.misses) == (0, 2 * len(uncached))

    warm = TemplateCache(tmp_path / "cache")  # a new process: reads the file the first wrote
    from_cache = build_dags(repo_templates, cache=warm)
    assert (warm.hits, warm.misses) == (len(uncached), 0)
    assert serialized(from_cache) == serialized(uncached)
    # The templates themselves too (the intake routes on them), with their source path.
    plain = load_templates(repo_templates).templates
    again = load_templates(repo_templates, cache=TemplateCache(tmp_path / "cache")).templates
    assert again == plain
    assert [t.source for t in again] == [t.source for t in plain]


def test_one_task_parse_reads_its_template_from_the_cache(repo_templates: Path, tmp_path: Path) -> None:
    build_dags(repo_templates, cache=TemplateCache(tmp_path / "cache"))
    dag_id = "kubernaut_pod_crash_recovery"
    warm = TemplateCache(tmp_path / "cache")
    one = build_dags(repo_templates, dag_id=dag_id, cache=warm)
    assert (warm.hits, warm.misses) == (1, 0)
    assert serialized(one) == serialized({dag_id: build_dags(repo_templates, cache=None)[dag_id]})


def test_an_edited_template_is_validated_again(tmp_path: Path) -> None:
    templates, store = tmp_path / "templates", tmp_path / "cache"
    templates.mkdir()
    (templates / "small.yaml").write_text(SMALL)
    (templates / "other.yaml").write_text(SMALL.replace("name: small", "name: other"))
    assert load_templates(templates, cache=TemplateCache(store)).ok

    # Same size, same second: only the text tells the versions apart.
    (templates / "small.yaml").write_text(SMALL.replace("default: 2", "default: 7"))
    cache = TemplateCache(store)
    report = load_templates(templates, cache=cache)
    assert (cache.hits, cache.misses) == (1, 1)
    small = next(t for t in report.templates if t.name == "small")
    assert small.parameters["replicas"].default == 7
    dag = build_dags(templates, cache=TemplateCache(store))["kubernaut_small"]
    assert dag.description == "first version"

    (templates / "small.yaml").write_text(SMALL.replace("first version", "second version"))
    assert (
        build_dags(templates, cache=TemplateCache(store))["kubernaut_small"].description == "second version"
    )


def test_a_template_broken_after_caching_reports_file_line_and_field(tmp_path: Path) -> None:
    templates, store = tmp_path / "templates", tmp_path / "cache"
    templates.mkdir()
    path = templates / "small.yaml"
    path.write_text(SMALL)
    assert set(build_dags(templates, cache=TemplateCache(store))) == {"kubernaut_small"}

    path.write_text(SMALL.replace("default: 2}", "default: 2, colour: red}"))
    for _ in range(2):  # the broken text is never cached: placed again on every parse
        cache = TemplateCache(store)
        report = load_templates(templates, cache=cache)
        assert cache.hits == 0
        assert report.templates == []
        [error] = report.errors[path]
        assert (error.file, error.line, error.path) == (str(path), 5, "parameters.replicas.colour")
        assert "unknown field 'colour'" in error.message
    assert build_dags(templates, cache=TemplateCache(store)) == {}

    path.write_text(SMALL)  # fixed again: the earlier entry is still good
    cache = TemplateCache(store)
    assert load_template(path, cache=cache).name == "small"
    assert cache.hits == 1


def test_a_duplicate_name_from_the_cache_is_placed_like_a_fresh_one(tmp_path: Path) -> None:
    templates, store = tmp_path / "templates", tmp_path / "cache"
    templates.mkdir()
    (templates / "a.yaml").write_text(SMALL)
    (templates / "b.yaml").write_text("# the same name\n" + SMALL)
    fresh = load_templates(templates)
    cache = TemplateCache(store)
    load_templates(templates, cache=cache)
    cache = TemplateCache(store)
    warm = load_templates(templates, cache=cache)
    assert cache.hits == 2
    [error] = warm.errors[templates / "b.yaml"]
    assert error == fresh.errors[templates / "b.yaml"][0]
    assert (error.line, error.path) == (2, "name")
    assert [t.source for t in warm.templates] == [templates / "a.yaml"]


def test_other_code_or_packages_invalidate_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    templates, store = tmp_path / "templates", tmp_path / "cache"
    templates.mkdir()
    (templates / "small.yaml").write_text(SMALL)
    load_templates(templates, cache=TemplateCache(store))

    site = tmp_path / "site"
    site.mkdir()
    code_stamp.cache_clear()
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    try:
        before = code_stamp()
        (site / "kubernaut_plugin-1.0.dist-info").mkdir()  # an action plugin installed
        code_stamp.cache_clear()
        assert code_stamp() != before
        cache = TemplateCache(store)
        load_templates(templates, cache=cache)
        assert (cache.hits, cache.misses) == (0, 1)
    finally:
        code_stamp.cache_clear()


def test_a_torn_or_foreign_cache_file_is_ignored(tmp_path: Path) -> None:
    templates, store = tmp_path / "templates", tmp_path / "cache"
    templates.mkdir()
    (templates / "small.yaml").write_text(SMALL)
    load_templates(templates, cache=TemplateCache(store))
    [file] = store.iterdir()
    assert store.stat().st_mode & 0o777 == 0o700 and file.stat().st_mode & 0o777 == 0o600

    file.chmod(0o666)  # anyone could have put a pickle there: never loaded
    cache = TemplateCache(store)
    assert load_templates(templates, cache=cache).ok and cache.hits == 0

    file.write_bytes(file.read_bytes()[:100])  # torn
    file.chmod(0o600)
    cache = TemplateCache(store)
    assert load_templates(templates, cache=cache).ok and cache.hits == 0
    cache = TemplateCache(store)  # rewritten whole by the miss
    assert load_templates(templates, cache=cache).ok and cache.hits == 1
    assert [p.name for p in store.iterdir()] == [file.name]  # no temporary files left


def test_an_unwritable_cache_leaves_the_parse_working(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "small.yaml").write_text(SMALL)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    assert set(build_dags(templates, cache=TemplateCache(blocker / "cache"))) == {"kubernaut_small"}


def _load_repeatedly(templates: Path, store: Path, mine: Path, rounds: int, count: int) -> None:
    """In a forked process: edit our own file and load them all, with the others doing the same."""
    for i in range(rounds):
        text = SMALL.replace("name: small", f"name: {mine.stem}").replace("first", f"round {i}")
        mine.with_suffix(".tmp").write_text(text)
        mine.with_suffix(".tmp").replace(mine)  # the others never read it half-written
        report = load_templates(templates, cache=TemplateCache(store))
        own = [t for t in report.templates if t.name == mine.stem]
        if not report.ok or len(report.templates) != count or own[0].description != f"round {i} version":
            os._exit(3)
    os._exit(0)


def test_concurrent_writers_leave_a_whole_cache(repo_templates: Path, tmp_path: Path) -> None:
    store = tmp_path / "cache"
    mine = [repo_templates / f"writer-{k}.yaml" for k in range(4)]
    for path in mine:
        path.write_text(SMALL.replace("name: small", f"name: {path.stem}"))
    count = len(list(repo_templates.iterdir()))
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_load_repeatedly, args=(repo_templates, store, path, 5, count))
        for path in mine
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert all(p.suffix == ".pickle" for p in store.iterdir())  # no temporary file left
    assert serialized(build_dags(repo_templates, cache=TemplateCache(store))) == serialized(
        build_dags(repo_templates, cache=None)
    )


def test_where_the_cache_lives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / DEFAULT_SUBDIR
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"
    for off in ("off", "OFF", "0", ""):
        monkeypatch.setenv(CACHE_ENV, off)
        assert cache_dir() is None and cache_module.default_cache() is None
