"""Fakes for the intake's two ports (history, Airflow) and payload builders."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from kubernaut.intake.routing import Router
from kubernaut.templates import Template, load_templates
from tests.conftest import REPO

NOW = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def alert(
    alertname: str = "KubePodCrashLooping",
    status: str = "firing",
    fingerprint: str = "0a1b2c3d4e5f6a7b",
    starts_at: str = "2024-05-01T12:00:00.123456789Z",
    **labels: str,
) -> dict[str, Any]:
    if not labels:
        labels = {"namespace": "demo", "pod": "web-7d4b9c-x2x", "container": "web"}
    return {
        "status": status,
        "labels": {"alertname": alertname, **labels},
        "annotations": {"summary": "something is wrong"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    alerts = alerts or (alert(),)
    return {
        "version": "4",
        "receiver": "kubernaut",
        "status": status,
        "alerts": list(alerts),
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "groupKey": '{}:{alertname="x"}',
        "truncatedAlerts": 0,
    }


@dataclass
class FakeHistory:
    runs: list[dict[str, Any]] = field(default_factory=list)
    launches: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def last_run(self, template: str, namespace: str, name: str) -> dict[str, Any] | None:
        mine = [
            r
            for r in self.runs
            if (r["template"], r["target_namespace"], r["target_name"]) == (template, namespace, name)
        ]
        return max(mine, key=lambda r: r["started_at"]) if mine else None

    def active_runs(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.runs
            if (r["target_namespace"], r["target_name"]) == (namespace, name) and r["status"] == "running"
        ]

    def consecutive_failures(self, alert_name: str, namespace: str, name: str) -> int:
        return self.failures

    def recent_launches(self, namespace: str, name: str, since: datetime) -> list[dict[str, Any]]:
        return [d for d in self.launches if d["received_at"] >= since]

    @contextlib.contextmanager
    def target_lock(self, namespace: str, name: str) -> Iterator[None]:
        with self.lock:
            yield

    def record_decision(self, **fields: Any) -> None:
        self.decisions.append(fields)
        if fields["decision"] == "triggered":
            self.launches.append({**fields, "received_at": NOW, "run_status": None})


@dataclass
class FakeAirflow:
    paused: set[str] = field(default_factory=set)
    runs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    triggers: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def dag_paused(self, dag_id: str) -> bool:
        return dag_id in self.paused

    def run_exists(self, dag_id: str, run_id: str) -> bool:
        return (dag_id, run_id) in self.runs

    def trigger(self, dag_id: str, run_id: str, conf: Mapping[str, Any]) -> bool:
        with self.lock:
            self.triggers += 1
            if (dag_id, run_id) in self.runs:
                return False
            self.runs[dag_id, run_id] = dict(conf)
            return True


@pytest.fixture(scope="session")
def templates() -> list[Template]:
    report = load_templates(REPO / "templates")
    assert report.ok, report.all_errors()
    return report.templates


@pytest.fixture(scope="session")
def router(templates: list[Template]) -> Router:
    return Router(templates)
