"""Fakes for the intake's two ports (history, Airflow) and payload builders."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from kubernaut.intake.airflow_client import Triggered
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


LAUNCH_RECORDS = ("triggered", "triggering", "unconfirmed")


@dataclass
class FakeHistory:
    """The intake's history port in memory; decisions are rows (with ids) like the real table."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rows: threading.Lock = field(default_factory=threading.Lock)
    pings: int = 0
    claims: int = 0

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
        return [
            {**d, "run_status": None}
            for d in self.decisions
            if d["decision"] in LAUNCH_RECORDS
            and (d["target"]["namespace"], d["target"]["name"]) == (namespace, name)
            and d["received_at"] >= since
        ]

    def recent_runs(
        self, namespace: str, name: str, since: datetime, *, cluster: str = ""
    ) -> list[dict[str, Any]]:
        return [
            r
            for r in self.runs
            if (r["target_namespace"], r["target_name"]) == (namespace, name)
            and r["started_at"] >= since
            and r["status"] != "not_needed"
        ]

    def ineffective_runs(
        self, alert_name: str, namespace: str, name: str, since: datetime, *, cluster: str = ""
    ) -> list[dict[str, Any]]:
        return [
            r
            for r in self.recent_runs(namespace, name, since)
            if r.get("alert_name", alert_name) == alert_name
            and r["status"] in ("failed", "rolled_back", "partially_rolled_back", "rollback_failed")
        ]

    def recent_alerts(self, patterns: list[str], since: datetime) -> list[dict[str, Any]]:
        return []

    def ping(self) -> None:
        self.pings += 1

    def launch_of(self, dag_id: str, dag_run_id: str) -> dict[str, Any] | None:
        found = [
            d
            for d in self.decisions
            if (d["dag_id"], d["dag_run_id"]) == (dag_id, dag_run_id) and d["decision"] in LAUNCH_RECORDS
        ]
        found.sort(key=lambda d: (d["decision"] != "triggered", d["id"]))
        return {**found[0], "age_s": 0.0, "run_status": None} if found else None

    @contextlib.contextmanager
    def target_claim(self, namespace: str, name: str) -> Iterator[bool]:
        self.claims += 1
        acquired = self.lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                self.lock.release()

    def insert_decision(self, **fields: Any) -> int:
        with self.rows:
            row = {**fields, "id": len(self.decisions) + 1, "received_at": NOW}
            self.decisions.append(row)
            return int(row["id"])

    def settle_launch(self, row_id: int, decision: str, reason: str) -> None:
        self.decisions[row_id - 1].update(decision=decision, reason=reason)

    def take_over_launch(self, row_id: int, reason: str, in_flight_seconds: float) -> bool:
        with self.rows:
            row = self.decisions[row_id - 1]
            if row["decision"] != "unconfirmed":
                return False
            row.update(decision="triggering", reason=reason)
            return True

    def final(self) -> list[str]:
        return [d["decision"] for d in self.decisions]


@dataclass
class FakeAirflow:
    paused: set[str] = field(default_factory=set)
    runs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    triggers: int = 0
    calls: list[str] = field(default_factory=list)

    async def warm(self) -> None:
        return None

    async def dag_paused(self, dag_id: str) -> bool:
        self.calls.append(f"paused {dag_id}")
        return dag_id in self.paused

    async def run_exists(self, dag_id: str, run_id: str, *, attempts: int | None = None) -> bool:
        self.calls.append(f"exists {run_id}")
        return (dag_id, run_id) in self.runs

    async def trigger(self, dag_id: str, run_id: str, conf: Mapping[str, Any]) -> Triggered:
        self.calls.append(f"trigger {run_id}")
        self.triggers += 1
        if (dag_id, run_id) in self.runs:
            return Triggered.EXISTED
        self.runs[dag_id, run_id] = dict(conf)
        return Triggered.CREATED


@pytest.fixture(scope="session")
def templates() -> list[Template]:
    report = load_templates(REPO / "templates")
    assert report.ok, report.all_errors()
    return report.templates


@pytest.fixture(scope="session")
def router(templates: list[Template]) -> Router:
    return Router(templates)
