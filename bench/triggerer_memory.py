"""The triggerer's memory as it decides runs' rollbacks: does it grow with every run?

On the live stack (airflow standalone: LocalExecutor, PostgreSQL, the sandbox cluster), runs a
one-step probe template in batches and prints the triggerer's PSS (supervisor and trigger
runner) on the idle stack and after each batch, each run's ``rollback`` having been decided in
the triggerer (Airflow builds a runtime task instance there for each task it starts).

    .venv/bin/python bench/triggerer_memory.py [--batches 4] [--batch 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from concurrency import probe_run, sample
from kubernaut.demo import wait
from kubernaut.live_stack import LiveStack

DAG = "kubernaut_memory_probe"
PROBE = """
name: memory-probe
description: One step that only logs (bench/triggerer_memory.py)
alert_types: [MemoryProbe]
configuration: {max_active_runs: 1000}
steps:
  - name: note
    action: {type: custom, action: log, parameters: {message: "memory probe"}}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch", type=int, default=50, help="runs per batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubernaut-bench-") as tmp:
        templates = Path(tmp) / "templates"
        templates.mkdir()
        (templates / "memory-probe.yaml").write_text(PROBE)
        stack = LiveStack(Path(tmp) / "stack", templates_dir=templates).start()
        try:
            assert stack.airflow is not None and stack.airflow.proc is not None
            api, root = stack.airflow.client(), stack.airflow.proc.pid
            wait(lambda: api.get(f"/dags/{DAG}").status_code == 200, 180, "the probe DAG to be parsed")
            api.patch(f"/dags/{DAG}", json={"is_paused": False}).raise_for_status()
            time.sleep(15)  # let the stack settle after start-up and parsing
            print(f"idle stack: triggerer PSS {sample(root)[3].get('triggerer', 0.0):.1f} MiB", flush=True)
            started = 0
            for _ in range(args.batches):
                for _ in range(args.batch):
                    body = probe_run("MemoryProbe", f"m{started:05d}")
                    api.post(f"/dags/{DAG}/dagRuns", json=body).raise_for_status()
                    started += 1

                def finalized(count: int = started) -> bool:
                    body = {"dag_ids": [DAG], "task_ids": ["finalize"], "page_limit": 10000}
                    found = api.post("/dags/~/dagRuns/~/taskInstances/list", json=body).json()
                    done: int = sum(t["state"] == "success" for t in found["task_instances"])
                    return done >= count

                wait(finalized, 900, f"{started} runs", interval=2)
                time.sleep(5)
                pss = sample(root)[3].get("triggerer", 0.0)
                print(f"after {started} runs: triggerer PSS {pss:.1f} MiB", flush=True)
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
