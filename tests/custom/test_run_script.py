"""run_script: only allow-listed commands, checked arguments, no shell, bounded output."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kubernaut.actions import ActionError, PreconditionFailed, registry
from kubernaut.config import KubernautConfig
from kubernaut.testing import ParamsInvalid, run_action

run_script = registry.get("custom", "run_script")


@pytest.fixture
def config(tmp_path: Path) -> KubernautConfig:
    script = tmp_path / "report.sh"
    script.write_text(
        '#!/bin/sh\necho "args:$*"\necho "secret:${AIRFLOW_CONN_X:-none}"\necho oops >&2\nexit "${EXIT:-0}"\n'
    )
    script.chmod(0o755)
    return KubernautConfig(
        scripts={
            "report": [str(script), "--fixed"],
            "echo": ["echo", "hello"],
            "fail": ["sh", "-c", "echo broken >&2; exit 3"],
            "sleepy": ["sh", "-c", "sleep 30 & sleep 30"],
            "chatty": ["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x"],
        }
    )


def test_allowed_script_runs_with_arguments(config: KubernautConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_X", "postgres://user:pw@db/x")
    result = run_action(
        run_script, {"script": "report", "args": ["shop", "app=web", "web-1.2"]}, config=config
    )
    out = result.output
    assert out["exit_code"] == 0 and out["argv"][1:] == ["--fixed", "shop", "app=web", "web-1.2"]
    assert "args:--fixed shop app=web web-1.2" in out["stdout"] and out["stderr"] == "oops\n"
    assert "secret:none" in out["stdout"]  # the worker's secrets are not in the script's environment


def test_command_found_on_path(config: KubernautConfig) -> None:
    result = run_action(run_script, {"script": "echo", "args": ["world"]}, config=config)
    assert result.output["stdout"] == "hello world\n" and os.path.isabs(result.output["argv"][0])


def test_unlisted_script_is_refused(config: KubernautConfig) -> None:
    with pytest.raises(
        PreconditionFailed, match=r"'rm' is not in the allow-list \(allowed: chatty, echo, fail"
    ):
        run_action(run_script, {"script": "rm"}, config=config)
    with pytest.raises(PreconditionFailed, match="none configured"):
        run_action(run_script, {"script": "echo"}, config=KubernautConfig())


@pytest.mark.parametrize(
    "arg",
    [
        "a; rm -rf /",
        "$(id)",
        "`id`",
        "a|b",
        "a && b",
        "--output=/etc/passwd",
        "-rf",
        "/etc/passwd",
        "../../etc/passwd",
        "a\nb",
        "a b",
        "",
        "x" * 300,
        "ok>file",
    ],
)
def test_injection_attempts_in_arguments_are_refused(config: KubernautConfig, arg: str) -> None:
    with pytest.raises(ParamsInvalid, match=r"refused|at most"):
        run_action(run_script, {"script": "echo", "args": [arg]}, config=config)


@pytest.mark.parametrize("name", ["../bin/sh", "/bin/sh", "echo hello", ""])
def test_script_names_are_names(config: KubernautConfig, name: str) -> None:
    with pytest.raises(ParamsInvalid, match="script"):
        run_action(run_script, {"script": name}, config=config)


def test_non_zero_exit_fails_with_stderr(config: KubernautConfig) -> None:
    with pytest.raises(ActionError, match=r"'fail' exited with 3 \(expected \[0\]\); stderr: broken"):
        run_action(run_script, {"script": "fail"}, config=config)
    result = run_action(run_script, {"script": "fail", "expected_exit_codes": [0, 3]}, config=config)
    assert result.output["exit_code"] == 3


def test_timeout_kills_the_process_group(config: KubernautConfig) -> None:
    started = time.monotonic()
    with pytest.raises(ActionError, match=r"killed after 0.5s timeout"):
        run_action(run_script, {"script": "sleepy", "timeout": "500ms"}, config=config)
    assert time.monotonic() - started < 5


def test_output_is_bounded(config: KubernautConfig) -> None:
    result = run_action(run_script, {"script": "chatty"}, config=config)
    assert result.output["truncated"] and len(result.output["stdout"]) == 16 * 1024


def test_dry_run_checks_but_does_not_run(config: KubernautConfig, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    cfg = KubernautConfig(scripts={"touch": ["touch", str(marker)]})
    result = run_action(run_script, {"script": "touch"}, config=cfg, dry_run=True)
    assert result.output["ran"] is False and not marker.exists()
    with pytest.raises(PreconditionFailed):
        run_action(run_script, {"script": "nope"}, config=cfg, dry_run=True)


def test_missing_executable_is_a_precondition_failure() -> None:
    cfg = KubernautConfig(scripts={"gone": ["/nonexistent/tool"]})
    with pytest.raises(PreconditionFailed, match="not an executable file"):
        run_action(run_script, {"script": "gone"}, config=cfg)
