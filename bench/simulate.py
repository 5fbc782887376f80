"""Seconds per scenario of ``kubernaut simulate``, beside the floor measured in the same run.

For every shipped scenario (``scenarios/<template>/*.yaml``): the wall time of the whole
scenario (throwaway sandbox, seed, fault, alert, the template's steps through the production
step runner, rollback, checks), and the floor: a sandbox cluster started, seeded with the demo
objects and settled (workloads Ready), then stopped, which every scenario pays before its
first step. Also the start-up of the command itself (imports), in a fresh process.

Run: python bench/simulate.py [--repeat 1] [TEMPLATES_DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def floor(repeat: int) -> float:
    from kubernaut.simulate.engine import _settled, _wait
    from kubernaut.testing.sandbox import kube_sandbox

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            t0 = time.monotonic()
            with kube_sandbox(Path(tmp), pod_ready_delay=0.1, crash_interval=0.5) as sandbox:
                _wait("settle", lambda: _settled(sandbox.cluster))
            times.append(time.monotonic() - t0)
    return statistics.median(times)


def startup() -> float:
    """A fresh process: `kubernaut simulate` on a name that does not exist (imports, then exit 2)."""
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "kubernaut", "simulate", str(REPO / "templates" / "no-such.yaml")],
        capture_output=True,
        check=False,
    )
    return time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("templates", nargs="?", default=str(REPO / "templates"))
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    from kubernaut.simulate.cli import main as simulate

    runs: dict[str, list[float]] = {}
    verdicts: dict[str, str] = {}
    for _ in range(args.repeat):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            simulate([args.templates, "--json"])
        for s in json.loads(out.getvalue())["scenarios"]:
            name = f"{s['template']}/{s['scenario']}"
            runs.setdefault(name, []).append(s["seconds"])
            verdicts[name] = s["verdict"] + ("" if s["passed"] else " (FAILED)")
    base = floor(max(3, args.repeat))
    start = startup()
    width = max((len(n) for n in runs), default=10)
    print(f"{'scenario':<{width}}  {'seconds':>7}  {'over floor':>10}  verdict")
    for name, times in runs.items():
        median = statistics.median(times)
        print(f"{name:<{width}}  {median:7.1f}  {median - base:10.1f}  {verdicts[name]}")
    total = [statistics.median(t) for t in runs.values()]
    if total:
        print(
            f"{len(total)} scenarios: {sum(total):.1f}s in all, {statistics.mean(total):.1f}s mean, "
            f"{max(total):.1f}s max"
        )
    print(f"floor (sandbox start + demo seed + settled + stop): {base:.2f}s per scenario")
    print(f"command start-up (fresh process, imports): {start:.1f}s once per invocation")


if __name__ == "__main__":
    main()
