"""``run_script``: run an allow-listed command by name.

The command line comes only from the configuration (``scripts: {name: [argv...]}``); the
step adds arguments of a restricted charset. No shell, a minimal environment (no Airflow
secrets), a fresh working directory, a timeout that kills the whole process group, and
output captured to files and bounded.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import Field, field_validator

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionError,
    ActionParams,
    ActionResult,
    PreconditionFailed,
)
from kubernaut.actions.custom import NO_UNDO_DOC, protected_namespaces_named
from kubernaut.actions.registry import register
from kubernaut.durations import Duration

if TYPE_CHECKING:
    from kubernaut.policy import Target

OUTPUT_LIMIT = 16 * 1024
SCRIPT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Starts with a letter or digit (so never an option like `--exec` or an absolute path), then
# characters common in Kubernetes names, labels and numbers; no shell syntax, no spaces.
_ARG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:=@,+/-]{0,252}$")
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "HOME")


class RunScriptParams(ActionParams):
    script: str = Field(pattern=SCRIPT_NAME, description="Name in the configuration's `scripts` allow-list")
    args: list[str] = Field(
        default_factory=list, max_length=32, description="Extra arguments (restricted charset)"
    )
    timeout: Duration = Field(default=timedelta(minutes=1), description="Killed after this long")
    expected_exit_codes: list[int] = Field(default_factory=lambda: [0], min_length=1)

    @field_validator("args")
    @classmethod
    def _args(cls, value: list[str]) -> list[str]:
        for arg in value:
            if not _ARG.match(arg) or ".." in arg:
                raise ValueError(
                    f"argument {arg!r} refused: arguments must start with a letter or digit and use only "
                    "letters, digits and _ . : = @ , + / - (no spaces, shell syntax or '..')"
                )
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(hours=1):
            raise ValueError("timeout must be between 0 and 1h")
        return value


def resolve_argv(ctx: ActionContext, params: RunScriptParams) -> list[str]:
    allowed = ctx.config.scripts
    if params.script not in allowed:
        known = ", ".join(sorted(allowed)) or "none configured"
        raise PreconditionFailed(f"script {params.script!r} is not in the allow-list (allowed: {known})")
    base = list(allowed[params.script])
    if not base:
        raise PreconditionFailed(f"script {params.script!r} has an empty command in the configuration")
    executable = base[0] if os.path.isabs(base[0]) else shutil.which(base[0])
    if executable is None or not os.access(executable, os.X_OK):
        raise PreconditionFailed(f"script {params.script!r}: {base[0]!r} is not an executable file")
    return [executable, *base[1:], *params.args]


def _tail(stream: IO[bytes]) -> tuple[str, bool]:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - OUTPUT_LIMIT))
    return stream.read().decode(errors="replace"), size > OUTPUT_LIMIT


@register
class RunScript(Action[RunScriptParams]):
    kind = "custom"
    name = "run_script"
    Params = RunScriptParams
    summary = "Run an allow-listed command (configuration `scripts`) with checked arguments; no shell."
    mutating = True
    changes = (
        "whatever the allow-listed command changes; the policy refuses arguments naming a protected namespace"
    )
    undo_doc = NO_UNDO_DOC
    dry_run_doc = "allow-list and arguments checked, command not run"

    def no_undo_reason(self, params: RunScriptParams) -> str:
        return f"custom/run_script {params.script} runs a command whose effect has no undo"

    def targets(self, ctx: ActionContext, params: RunScriptParams) -> list[Target]:
        # The step's arguments, which may carry alert data; the configured argv is the
        # operator's own choice.
        return protected_namespaces_named(ctx, params.args)

    def precheck(self, ctx: ActionContext, params: RunScriptParams) -> None:
        resolve_argv(ctx, params)

    def run(self, ctx: ActionContext, params: RunScriptParams) -> ActionResult:
        argv = resolve_argv(ctx, params)
        if ctx.dry_run:
            return ActionResult(output={"script": params.script, "argv": argv, "ran": False, "dry_run": True})
        timeout = min(params.timeout.total_seconds(), ctx.remaining())
        env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
        env["KUBERNAUT_SCRIPT"] = params.script
        started = time.monotonic()
        with (
            tempfile.TemporaryDirectory(prefix="kubernaut-script-") as workdir,
            tempfile.TemporaryFile() as out,
            tempfile.TemporaryFile() as err,
        ):
            # Output goes to files, not pipes: a chatty script can neither block nor fill memory.
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=Path(workdir),
                env=env,
                start_new_session=True,  # its own process group, so a timeout kills its children too
            )
            try:
                code: int | None = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                code = None
            stdout, out_cut = _tail(out)
            stderr, err_cut = _tail(err)
        output: dict[str, Any] = {
            "script": params.script,
            "argv": argv,
            "ran": True,
            "exit_code": code,
            "duration_s": round(time.monotonic() - started, 3),
            "stdout": stdout,
            "stderr": stderr,
            "truncated": out_cut or err_cut,
        }
        if code is None:
            raise ActionError(
                f"script {params.script!r} killed after {timeout:g}s timeout; stderr: {stderr[-500:]}"
            )
        if code not in params.expected_exit_codes:
            raise ActionError(
                f"script {params.script!r} exited with {code} (expected {params.expected_exit_codes}); "
                f"stderr: {stderr[-500:].strip() or '(empty)'}"
            )
        return ActionResult(output=output)
