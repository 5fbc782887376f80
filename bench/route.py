"""Routing decisions per second and latency, in-process (no Airflow, no history).

Beside it, a same-run baseline: plain label-dict matching (alertname lookup + equality
of a fixed label set), i.e. the least any router has to do.

    .venv/bin/python bench/route.py [--alerts 20000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernaut.config import PolicyConfig
from kubernaut.intake.decisions import Decider
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Router
from kubernaut.templates import load_templates

REPO = Path(__file__).resolve().parent.parent
NAMES = [
    "KubePodCrashLooping",
    "KubeDeploymentReplicasMismatch",
    "KubePodNotReady",
    "KubePodOOMKilled",
    "KubernautRolloutRestart",
    "KubeNodeNotReady",
    "KubePersistentVolumeFillingUp",
    "Watchdog",
]


def make_alerts(n: int) -> list[Alert]:
    rng = random.Random(7)
    alerts = []
    for i in range(n):
        labels = {
            "alertname": rng.choice(NAMES),
            "namespace": rng.choice(["demo", "shop", "kube-system"]),
            "pod": f"web-{i}",
            "deployment": "web",
            "container": "web",
            "severity": "warning",
            "node": "worker-1",
            "persistentvolumeclaim": "data",
            "job": "kube-state-metrics",
        }
        alerts.append(
            Alert.model_validate(
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": {},
                    "startsAt": "2024-05-01T12:00:00Z",
                    "fingerprint": f"{i:016x}",
                }
            )
        )
    return alerts


def measure(fn: Callable[[Alert], Any], alerts: list[Alert]) -> tuple[float, float, float]:
    for a in alerts[:500]:
        fn(a)  # warm-up
    samples = []
    start = time.perf_counter()
    for a in alerts:
        t0 = time.perf_counter_ns()
        fn(a)
        samples.append(time.perf_counter_ns() - t0)
    total = time.perf_counter() - start
    samples.sort()
    p50 = statistics.median(samples) / 1e6
    p99 = samples[int(len(samples) * 0.99) - 1] / 1e6
    return len(alerts) / total, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=20000)
    args = parser.parse_args()
    templates = load_templates(REPO / "templates").templates
    decider = Decider(Router(templates), PolicyConfig())
    # Baseline: dict lookup by alertname, then required labels equal.
    plain: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for t in templates:
        for a in t.alert_types:
            plain.setdefault(a.alertname, []).append((t.name, {}))

    def baseline(alert: Alert) -> str | None:
        for name, required in plain.get(alert.labels.get("alertname", ""), []):
            if all(alert.labels.get(k) == v for k, v in required.items()):
                return name
        return None

    alerts = make_alerts(args.alerts)
    rows = [
        ("baseline: plain label-dict matching", measure(baseline, alerts)),
        ("kubernaut routing decision (route + target + policy)", measure(decider.decide, alerts)),
    ]
    print(f"{len(templates)} templates, {args.alerts} alerts, in-process, one thread")
    print(f"{'':54} {'decisions/s':>12} {'p50 ms':>9} {'p99 ms':>9}")
    for label, (rate, p50, p99) in rows:
        print(f"{label:54} {rate:12,.0f} {p50:9.4f} {p99:9.4f}")
    print(f"target p99 < 2 ms: {'met' if rows[1][1][2] < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
