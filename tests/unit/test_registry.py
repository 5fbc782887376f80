"""Action lookup, and user actions from another package through the entry-point group."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubernaut.actions import ActionContext, ActionRegistry, UnknownAction, registry


def test_builtins_are_registered_by_kind() -> None:
    assert {"get_pod_status", "restart_pod", "scale_deployment", "rollout_restart_deployment"} <= set(
        registry.names("kubernetes")
    )
    assert {"validate_pod_health", "validate_deployment_ready"} <= set(registry.names("monitoring"))
    assert {"wait", "log"} <= set(registry.names("custom"))


def test_unknown_action_suggests_close_names() -> None:
    with pytest.raises(UnknownAction, match="did you mean 'restart_pod'"):
        registry.get("kubernetes", "restrat_pod")


def test_duplicate_registration_is_an_error() -> None:
    reg = ActionRegistry(builtin_modules=("kubernaut.actions.custom",))
    wait = registry.get("custom", "wait")
    reg.register(wait)  # the same class again is fine
    clone = type("Wait2", (wait,), {})
    with pytest.raises(ValueError, match="registered twice"):
        reg.register(clone)


def test_user_package_registers_through_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "acme_actions.py").write_text(
        textwrap.dedent(
            """
            from kubernaut.actions import Action, ActionParams, ActionResult

            class GreetParams(ActionParams):
                who: str

            class Greet(Action[GreetParams]):
                kind = "custom"
                name = "acme_greet"
                Params = GreetParams

                def run(self, ctx, params):
                    return ActionResult(output={"greeting": f"hello {params.who}"})
            """
        )
    )
    dist = tmp_path / "acme_actions-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-actions\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[kubernaut.actions]\nacme_greet = acme_actions:Greet\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        reg = ActionRegistry(builtin_modules=())
        cls = reg.get("custom", "acme_greet")
        result = cls().execute(ActionContext(), cls.Params.model_validate({"who": "sre"}))
        assert result.output == {"greeting": "hello sre"}
    finally:
        sys.modules.pop("acme_actions", None)


def test_readme_action_table_is_generated_from_the_code() -> None:
    from kubernaut.actions.catalogue import BEGIN, END, markdown_table
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    current = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert current == markdown_table(), "run: kubernaut actions --update-readme README.md"


# --- plugins: real distributions (a *.dist-info with entry_points.txt on sys.path) -------------

CLASH = """
from kubernaut.actions import Action, ActionParams, ActionResult

class RestartParams(ActionParams):
    namespace: str
    pod: str

class RestartPod(Action[RestartParams]):
    kind = "kubernetes"
    name = "restart_pod"
    Params = RestartParams
    summary = "Their own restart."

    def run(self, ctx, params):
        return ActionResult()
"""

# A module entry point: its import declares three actions, the middle one clashing.
SEVERAL = """
from kubernaut.actions import Action, ActionResult, register

class _Base(Action):
    kind = "custom"
    summary = "A plugin action."

    def run(self, ctx, params):
        return ActionResult(output={"from": self.name})

@register
class Hello(_Base):
    name = "acme_hello"

@register
class Wait(_Base):
    name = "wait"

@register
class Bye(_Base):
    name = "acme_bye"
"""


def install(site: Path, dist: str, version: str, entry_points: dict[str, str], **modules: str) -> None:
    """An installed distribution as pip leaves it: modules plus NAME-VERSION.dist-info."""
    for module, code in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[kubernaut.actions]\n{lines}")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site directory on sys.path with three plugins: one clashing with a built-in, one
    declaring several actions (one clashing), one that cannot be imported."""
    site = tmp_path / "site"
    site.mkdir()
    install(site, "acme-clash", "2.0", {"restart_pod": "acme_clash:RestartPod"}, acme_clash=CLASH)
    install(site, "acme-several", "1.3", {"acme": "acme_several"}, acme_several=SEVERAL)
    install(
        site,
        "acme-broken",
        "0.1",
        {"acme_broken": "acme_broken:Nope"},
        acme_broken="import nonexistent_mod\n",
    )
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in ("acme_clash", "acme_several", "acme_broken"):
        sys.modules.pop(name, None)


def test_bad_plugins_are_skipped_and_reported_with_their_packages(site: Path) -> None:
    reg = ActionRegistry()  # the built-ins plus whatever is installed: here the three plugins
    from kubernaut.actions.kubernetes.pods import RestartPod

    assert reg.get("kubernetes", "restart_pod") is RestartPod  # a built-in keeps its name
    assert reg.get("custom", "wait").__module__ == "kubernaut.actions.custom"
    hello, bye = reg.get("custom", "acme_hello"), reg.get("custom", "acme_bye")
    assert hello().execute(ActionContext(), hello.Params()).output == {"from": "acme_hello"}
    assert bye.__module__ == "acme_several"  # declared after the clash in the same module: kept
    assert reg.package_of("custom", "acme_hello") == "acme-several 1.3"
    assert reg.package_of("kubernetes", "restart_pod") == "kubernaut (built-in)"

    problems = {p.package: str(p) for p in reg.problems}
    assert set(problems) == {"acme-clash 2.0", "acme-several 1.3", "acme-broken 0.1"}
    assert problems["acme-clash 2.0"] == (
        "action entry point 'restart_pod = acme_clash:RestartPod' of package acme-clash 2.0: "
        "action kubernetes/restart_pod (acme_clash.RestartPod) clashes with kubernetes/restart_pod of "
        "package kubernaut (built-in) (kubernaut.actions.kubernetes.pods.RestartPod); it was skipped: "
        "give it another name (prefix it with your organisation's, e.g. acme_restart_pod)"
    )
    assert (
        "action custom/wait (acme_several.Wait) clashes with custom/wait of package kubernaut (built-in)"
        in (problems["acme-several 1.3"])
    )
    assert (
        "cannot be loaded: ModuleNotFoundError: No module named 'nonexistent_mod'"
        in problems["acme-broken 0.1"]
    )


def test_two_plugins_with_one_name_name_both_packages(site: Path) -> None:
    install(site, "other-vendor", "5.0", {"hello": "other_vendor:Hello"}, other_vendor=SEVERAL)
    try:
        reg = ActionRegistry(builtin_modules=())
        [clash] = [p for p in reg.problems if "acme_hello" in p.message]
        first, second = sorted([clash.package, reg.package_of("custom", "acme_hello")])
        assert (first, second) == ("acme-several 1.3", "other-vendor 5.0")
        assert f"of package {reg.package_of('custom', 'acme_hello')}" in clash.message
    finally:
        sys.modules.pop("other_vendor", None)


def test_cli_actions_shows_packages_and_problems(
    site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kubernaut import cli

    reg = ActionRegistry()
    monkeypatch.setattr(cli, "action_registry", lambda: reg)
    assert cli.main(["actions"]) == 1  # the table still prints; the installation needs a fix
    out, err = capsys.readouterr()
    rows = {line.split("|")[1].strip(" `"): line for line in out.splitlines()[2:]}
    assert out.splitlines()[0].endswith("| dry-run | package |")
    assert rows["acme_hello"].endswith("| acme-several 1.3 |")
    assert rows["restart_pod"].endswith("| kubernaut (built-in) |")
    assert len(err.strip().splitlines()) == 3
    assert (
        "kubernaut actions: action entry point 'restart_pod = acme_clash:RestartPod' of package acme-clash"
        in err
    )


def test_cli_validate_fails_on_a_clash_though_templates_are_valid(
    site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kubernaut import cli
    from tests.conftest import REPO

    reg = ActionRegistry()
    monkeypatch.setattr(cli, "action_registry", lambda: reg)
    assert cli.main(["validate", str(REPO / "templates")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "package acme-clash 2.0" in err and "package kubernaut (built-in)" in err
    assert err.strip().splitlines()[-1].endswith("templates OK, 0 with errors, 3 action plugin problem(s)")
    assert cli.main(["validate", "--format", "json", str(REPO / "templates")]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False and result["errors"] == [] and len(result["registry_problems"]) == 3


def _python(site: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=180, env=env, check=False
    )


def test_console_validate_with_a_clashing_plugin_is_an_error_not_a_traceback(site: Path) -> None:
    from tests.conftest import REPO

    run = _python(
        site,
        "import sys; from kubernaut.cli import main; sys.exit(main(sys.argv[1:]))",
        "validate",
        str(REPO / "templates"),
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "clashes with kubernetes/restart_pod of package kubernaut (built-in)" in run.stderr
    assert "of package acme-clash 2.0" in run.stderr


def test_dag_file_loads_every_dag_and_shows_the_plugin_problems(site: Path, tmp_path: Path) -> None:
    from kubernaut.factory import BROKEN_DAG_ID
    from tests.conftest import REPO

    dags_dir = tmp_path / "dags"
    shutil.copytree(REPO / "dags", dags_dir, ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "bag = DagBag(sys.argv[1])\n"
        "print('RESULT=' + json.dumps({'dags': sorted(bag.dags), 'errors': bag.import_errors}))\n"
    )
    run = _python(site, code, str(dags_dir))
    assert run.returncode == 0, run.stderr
    [line] = [x for x in run.stdout.splitlines() if x.startswith("RESULT=")]
    result = json.loads(line.removeprefix("RESULT="))
    templates = sorted(p.stem for p in (REPO / "templates").glob("*.yaml"))
    # every template's DAG, the effectiveness assessment's own and the history prune's
    assert result["dags"] == sorted(
        [
            "kubernaut_assessment",
            "kubernaut_maintenance",
            *("kubernaut_" + t.replace("-", "_") for t in templates),
        ]
    )
    assert BROKEN_DAG_ID not in result["dags"]
    [(path, error)] = result["errors"].items()
    assert path.endswith("kubernaut_template_errors.py")
    assert "3 action plugin(s) skipped:" in error
    assert "of package acme-clash 2.0: action kubernetes/restart_pod" in error
    assert "of package kubernaut (built-in)" in error
