"""Parse-time cost of the DAG factory: YAML templates -> validated models -> DAGs.

Prints the time to load and build 10, 100 and 1000 generated templates, per template,
beside a baseline measured in the same run: the same DAG shapes built directly in
Python with EmptyOperators (what Airflow costs anyway). Run: python bench/parse.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="kubernaut-bench-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from kubernaut.factory import build_dags

TEMPLATE = """\
name: generated-{i}
description: generated template {i}
alert_types: [Generated{i}, {{alertname: KubePodCrashLooping, matchers: ['namespace="ns{i}"']}}]
parameters:
  replicas: {{type: integer, default: 3}}
steps:
  - name: assess
    action: {{type: kubernetes, action: get_pod_status,
             parameters: {{namespace: "{{{{ alert.namespace }}}}", pod: "{{{{ alert.resource }}}}"}}}}
  - name: logs
    parallel: true
    action: {{type: kubernetes, action: get_pod_logs,
             parameters: {{namespace: "{{{{ alert.namespace }}}}", pod: "{{{{ alert.resource }}}}"}}}}
  - name: restart
    conditions: ["not steps['assess'].ready"]
    action: {{type: kubernetes, action: restart_pod,
             parameters: {{namespace: "{{{{ alert.namespace }}}}", pod: "{{{{ alert.resource }}}}"}}}}
    rollback: {{action: rollback_pod_restart}}
  - name: scale
    action: {{type: kubernetes, action: scale_deployment,
             parameters: {{namespace: "{{{{ alert.namespace }}}}", deployment: web, replicas: "{{{{ params.replicas }}}}"}}}}
  - name: validate
    action: {{type: monitoring, action: validate_pod_health,
             parameters: {{namespace: "{{{{ alert.namespace }}}}", pod: "{{{{ alert.resource }}}}", wait_timeout: 2m}}}}
"""


def baseline(count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        with DAG(f"baseline_{i}", schedule=None):
            a, b, c, d, e = (
                EmptyOperator(task_id=t) for t in ("assess", "logs", "restart", "scale", "validate")
            )
            [a, b] >> c >> d >> e
    return time.perf_counter() - started


def factory(directory: Path) -> tuple[float, int]:
    started = time.perf_counter()
    dags = build_dags(directory)
    return time.perf_counter() - started, len(dags)


def main() -> int:
    build_dags(Path(tempfile.mkdtemp()))  # warm imports (actions registry, jinja) outside timing
    baseline(1)
    print(f"{'templates':>9} {'factory s':>10} {'ms/tmpl':>8} {'baseline s':>11} {'ratio':>6}")
    for count in (10, 100, 1000):
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            for i in range(count):
                (directory / f"t{i:04d}.yaml").write_text(TEMPLATE.format(i=i))
            runs = 3 if count < 1000 else 1
            ours = []
            for _ in range(runs):
                seconds, built = factory(directory)
                if built != count:
                    print(f"expected {count} DAGs, built {built}", file=sys.stderr)
                    return 1
                ours.append(seconds)
            base = statistics.median(baseline(count) for _ in range(runs))
            mine = statistics.median(ours)
            print(f"{count:>9} {mine:>10.3f} {1000 * mine / count:>8.2f} {base:>11.3f} {mine / base:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
