"""The README's demo command, end to end: Airflow standalone (all four components) on
SQLite, the sandbox cluster as its own process, an injected fault, one alert through
the REST API, and a run that ends green with the fault fixed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_demo_fixes_the_injected_fault(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    kubernaut = Path(sys.executable).with_name("kubernaut")
    proc = subprocess.run(
        [str(kubernaut), "demo", "--exit", "--workdir", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    templates = len(list((REPO / "templates").glob("*.yaml")))
    assert f"{templates} remediation DAGs loaded" in out
    assert "3 in CrashLoopBackOff" in out
    assert "intake decision: triggered" in out
    assert "step rollout-restart      success" in out
    assert "run success; demo/web now 3/3 Ready, 0 crashing -> FAULT FIXED" in out
    # Stopped cleanly: no Airflow component left behind.
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", leftover.stdout
