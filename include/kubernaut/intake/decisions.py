"""One decision per alert: route it, apply the safety checks, launch at most one run.

Order matters and is cheapest-first: resolved -> no_template -> no_target -> protected
(no I/O), then duplicate (history) -> paused (Airflow, cached) -> blocked -> busy ->
cooldown (history, inside the per-target claim) -> trigger. The I/O-free checks live
here; the launching flow (claim, launch record, POST) is ``kubernaut.intake.launcher``.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from kubernaut.alert import NO_TARGET, Target, derive_target
from kubernaut.config import PolicyConfig
from kubernaut.intake.airflow_client import Triggered
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Route, Router

log = logging.getLogger(__name__)
DEFAULT_MAX_FAILURES = 3
DEFAULT_LAUNCH_GRACE = timedelta(minutes=10)


class Decision(StrEnum):
    TRIGGERED = "triggered"
    DUPLICATE = "duplicate"
    COOLDOWN = "cooldown"
    BUSY = "busy"
    BLOCKED = "blocked"
    PROTECTED = "protected"
    RESOLVED = "resolved"
    NO_TEMPLATE = "no_template"
    NO_TARGET = "no_target"
    PAUSED = "paused"


@dataclass
class AlertDecision:
    fingerprint: str
    alertname: str
    status: str
    decision: Decision
    reason: str
    template: str = ""
    dag_id: str = ""
    dag_run_id: str = ""
    target: Target = NO_TARGET
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "alertname": self.alertname,
            "status": self.status,
            "decision": str(self.decision),
            "template": self.template,
            "dag_id": self.dag_id,
            "dag_run_id": self.dag_run_id,
            "target": self.target.as_dict(),
            "reason": self.reason,
        }


class HistoryReader(Protocol):
    """What the checks read (also the route preview, which writes nothing)."""

    def last_run(self, template: str, namespace: str, name: str) -> dict[str, Any] | None: ...
    def active_runs(self, namespace: str, name: str) -> list[dict[str, Any]]: ...
    def consecutive_failures(self, alert_name: str, namespace: str, name: str) -> int: ...
    def recent_launches(self, namespace: str, name: str, since: datetime) -> list[dict[str, Any]]: ...


class HistoryPort(HistoryReader, Protocol):
    """The webhook's history: reads, launch records and the per-target claim (see history_checks)."""

    def ping(self) -> None: ...
    def launch_of(self, dag_id: str, dag_run_id: str) -> dict[str, Any] | None: ...
    def target_claim(self, namespace: str, name: str) -> contextlib.AbstractContextManager[bool]: ...
    def insert_decision(self, **fields: Any) -> int: ...
    def settle_launch(self, row_id: int, decision: str, reason: str) -> None: ...
    def take_over_launch(self, row_id: int, reason: str, in_flight_seconds: float) -> bool: ...


class AirflowPort(Protocol):
    async def warm(self) -> None: ...
    async def dag_paused(self, dag_id: str) -> bool: ...
    async def run_exists(self, dag_id: str, run_id: str, *, attempts: int | None = None) -> bool: ...
    async def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> Triggered: ...


@dataclass(frozen=True)
class HistoryFacts:
    """What the history says about a target, read in one go (inside the claim when launching)."""

    failures: int
    active: list[dict[str, Any]]
    launches: list[dict[str, Any]]
    last: dict[str, Any] | None

    @classmethod
    def read(
        cls, history: HistoryReader, alert: Alert, template: str, target: Target, since: datetime
    ) -> HistoryFacts:
        return cls(
            failures=history.consecutive_failures(alert.alertname, target.namespace, target.name),
            active=history.active_runs(target.namespace, target.name),
            launches=history.recent_launches(target.namespace, target.name, since),
            last=history.last_run(template, target.namespace, target.name),
        )


def dag_run_id(alert: Alert) -> str:
    """One run per alert occurrence: Alertmanager keeps fingerprint and startsAt across re-sends."""
    return f"alert__{alert.fingerprint}__{alert.starts_at:%Y%m%dT%H%M%S}"


def parse_required_label(spec: str) -> tuple[str, str | None]:
    """'key=value' requires that value; a bare 'key' requires the label (as the run's policy reads it)."""
    key, sep, value = spec.partition("=")
    return key.strip(), (value.strip() if sep else None)


def _sanitized(label: str) -> str:
    # kube-state-metrics exposes object labels as label_<name with non-alphanumerics as _>.
    return "label_" + re.sub(r"[^A-Za-z0-9_]", "_", label)


def unmanaged_reason(alert: Alert, require_label: str | None) -> str | None:
    """Why the alert's object is outside the opt-in scope, if the alert's labels can tell."""
    if not require_label:
        return None
    key, wanted = parse_required_label(require_label)
    for source, values in (("label", alert.labels), ("annotation", alert.annotations)):
        for name in (key, _sanitized(key)):
            if name in values:
                if wanted is None or values[name] == wanted:
                    return None
                return f"{source} {name}={values[name]!r} but policy requires {require_label!r}"
    return None  # the alert cannot tell: the run checks the live object before changing it


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Decider:
    """The checks of one alert, without I/O of its own: ``classify`` needs nothing, ``judge``
    reads facts from the history. ``decide`` is the preview (``kubernaut route``, benches):
    it reads the history if given one and launches and records nothing; the webhook's
    launching flow is ``kubernaut.intake.launcher``."""

    def __init__(
        self,
        router: Router,
        policy: PolicyConfig,
        *,
        history: HistoryReader | None = None,
        max_failures: int = DEFAULT_MAX_FAILURES,
        launch_grace: timedelta = DEFAULT_LAUNCH_GRACE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.router = router
        self.policy = policy
        self.history = history
        self.max_failures = max_failures
        self.launch_grace = launch_grace
        self.clock = clock

    def decide(self, alert: Alert) -> AlertDecision:
        """Preview: what the webhook would decide, short of Airflow (paused/duplicate not checked)."""
        d, route = self.classify(alert)
        if d.decision is not Decision.TRIGGERED:
            return d
        assert route is not None
        if self.history is not None:
            facts = HistoryFacts.read(self.history, alert, route.template.name, d.target, self.since(route))
            if self.judge(alert, route, d, facts):
                return d
        notes = "dry run: nothing launched"
        if self.history is None:
            notes += "; decided on routing alone (no history: cooldown, busy, blocked not checked)"
        return set_decision(d, Decision.TRIGGERED, f"{route.reason}; would launch {d.dag_run_id} ({notes})")

    # -- checks without I/O ---------------------------------------------------------------------
    def classify(self, alert: Alert) -> tuple[AlertDecision, Route | None]:
        """resolved, no_template, no_target, protected; else TRIGGERED (pending the I/O checks)."""
        route = self.router.route(alert.labels)
        target = derive_target(alert.labels)
        d = AlertDecision(
            fingerprint=alert.fingerprint,
            alertname=alert.alertname,
            status=alert.status,
            decision=Decision.TRIGGERED,
            reason="",
            target=target,
            labels=dict(alert.labels),
        )
        if route is not None:
            d.template, d.dag_id, d.dag_run_id = route.template.name, route.template.dag_id, dag_run_id(alert)
        if alert.status == "resolved":
            return set_decision(d, Decision.RESOLVED, "alert resolved: recorded, never triggers"), route
        if route is None:
            names = self.router.candidates(alert.alertname)
            if names:
                why = (
                    f"templates {', '.join(names)} answer {alert.alertname} "
                    "but their label matchers exclude these labels"
                )
            else:
                why = f"no template answers alert {alert.alertname or '(no alertname label)'!r}"
            return set_decision(d, Decision.NO_TEMPLATE, why), route
        if target is NO_TARGET:
            why = f"{route.reason}; but no label names the object (pod, deployment, node...)"
            return set_decision(d, Decision.NO_TARGET, why), route
        if target.namespace and target.namespace in self.policy.protected_namespaces:
            why = f"namespace {target.namespace!r} is protected by policy"
            return set_decision(d, Decision.PROTECTED, why), route
        unmanaged = unmanaged_reason(alert, self.policy.require_label)
        if unmanaged:
            return set_decision(d, Decision.PROTECTED, f"{target} is not managed: {unmanaged}"), route
        d.reason = route.reason
        return d, route

    # -- checks against the history's facts ------------------------------------------------------
    def since(self, route: Route) -> datetime:
        """How far back launches matter: the cooldown, or the grace for a launch to show up as a run."""
        return self.clock() - max(route.template.configuration.cooldown, self.launch_grace)

    def judge(self, alert: Alert, route: Route, d: AlertDecision, facts: HistoryFacts) -> bool:
        """blocked -> busy -> cooldown; True (and ``d`` set) when one applies."""
        target, template, now = d.target, route.template, self.clock()
        if facts.failures >= self.max_failures:
            set_decision(
                d,
                Decision.BLOCKED,
                f"{facts.failures} consecutive failed remediations of {alert.alertname} on {target} "
                f"(limit {self.max_failures}): a human must look; a successful run clears this",
            )
            return True
        cooldown = template.configuration.cooldown
        pending = [
            r
            for r in facts.launches
            if r.get("run_status") is None and (_utc(r.get("received_at")) or now) >= now - self.launch_grace
        ]
        if facts.active or pending:
            run = (facts.active or pending)[0]
            set_decision(d, Decision.BUSY, f"run {run.get('dag_run_id', '?')} for {target} is still active")
            return True
        started = [_utc(facts.last.get("started_at")) if facts.last else None] + [
            _utc(r.get("received_at")) for r in facts.launches if r.get("template") == template.name
        ]
        recent = max((s for s in started if s is not None), default=None)
        if recent is not None and now - recent < cooldown:
            left = cooldown - (now - recent)
            set_decision(
                d,
                Decision.COOLDOWN,
                f"{template.name} remediated {target} at {recent:%Y-%m-%dT%H:%M:%SZ}; cooldown "
                f"{cooldown} has {int(left.total_seconds())}s left",
            )
            return True
        return False


def set_decision(d: AlertDecision, decision: Decision, reason: str) -> AlertDecision:
    d.decision, d.reason = decision, reason
    return d


def decision_fields(d: AlertDecision, decision: str | None = None) -> dict[str, Any]:
    """The history row of a decision (``decision`` overrides, e.g. ``triggering``)."""
    return {
        "fingerprint": d.fingerprint,
        "alert_name": d.alertname,
        "alert_status": d.status,
        "decision": decision or str(d.decision),
        "reason": d.reason,
        "template": d.template,
        "dag_id": d.dag_id,
        "dag_run_id": d.dag_run_id,
        "target": d.target.as_dict(),
        "labels": d.labels,
    }
