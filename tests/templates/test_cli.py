from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kubernaut import cli
from kubernaut.actions.registry import ActionRegistry

from .conftest import SEED, WriteTemplate


@pytest.fixture(autouse=True)
def _test_registry(monkeypatch: pytest.MonkeyPatch, registry: ActionRegistry) -> None:
    monkeypatch.setattr(cli, "action_registry", lambda: registry)


def test_validate_ok(write: WriteTemplate, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(SEED, name="a.yaml")
    write(SEED.replace("pod-crash-recovery", "other"), name="b.yaml")
    assert cli.main(["validate", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "2 templates OK, 0 with errors"
    assert err == ""


def test_validate_reports_errors(
    write: WriteTemplate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(SEED, name="a.yaml")
    bad = write(
        SEED.replace("restart_pod,", "restrat_pod,").replace("wait_timeout: 5m", "wait_timeout: 5x"),
        name="b.yaml",
    )
    assert cli.main(["validate", str(good), str(bad)]) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"{bad}:9:")
    assert (
        "steps[1].action.action: unknown kubernetes action 'restrat_pod'; did you mean 'restart_pod'?"
        in lines[0]
    )
    assert lines[1].startswith(f"{bad}:15:") and "steps[2].action.parameters.wait_timeout" in lines[1]
    assert lines[-1] == "1 template OK, 1 with errors"
    assert out == ""


def test_validate_json(write: WriteTemplate, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write("name: x\n", name="bad.yaml")
    assert cli.main(["validate", "--format", "json", str(tmp_path)]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False
    assert result["summary"] == {"valid": 0, "invalid": 1}
    assert {e["message"] for e in result["errors"]} == {
        "missing required field 'alert_types'",
        "missing required field 'steps'",
    }
    assert {(e["file"], e["line"]) for e in result["errors"]} == {(str(bad), 1)}


def test_validate_missing_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", str(tmp_path / "nope")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert cli.main(["frobnicate"]) == 2
    assert cli.main(["validate", "--format", "xml"]) == 2


def test_validate_defaults_to_templates_dir(
    write: WriteTemplate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "templates").mkdir()
    write(SEED, name="templates/a.yaml")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["validate"]) == 0
    assert "1 template OK" in capsys.readouterr().out


def test_schema_to_file(tmp_path: Path, registry: ActionRegistry) -> None:
    target = tmp_path / "out" / "schema.json"
    assert cli.main(["schema", "-o", str(target)]) == 0
    schema = json.loads(target.read_text())
    actions = schema["$defs"]["StepAction"]["oneOf"]
    assert {a["title"] for a in actions} == {f"{c.kind}/{c.name}" for c in registry.all()}


def test_console_script_in_subprocess(tmp_path: Path) -> None:
    """Runs against the real registry, using only the always-present custom `log` action."""
    (tmp_path / "ok.yaml").write_text(
        "name: ok\nalert_types: [A]\nsteps:\n"
        "  - name: say\n    action: {type: custom, action: log, parameters: {message: hi, levl: info}}\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "kubernaut.cli", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert f"{tmp_path / 'ok.yaml'}:5:" in run.stderr
    assert "steps[0].action.parameters.levl: unknown parameter 'levl'" in run.stderr
    assert "did you mean 'level'?" in run.stderr
