"""One decision per alert: route it, apply the safety checks, launch at most one run.

Order matters and is cheapest-first: resolved -> no_template -> no_target -> protected
(no I/O), then under a per-target lock: duplicate -> paused (Airflow) -> blocked -> busy
-> cooldown (history) -> trigger. The lock plus the recorded ``triggered`` decision make
a burst of webhooks for one target see each other's launches before the runs start.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from kubernaut.alert import NO_TARGET, Target, derive_target
from kubernaut.config import PolicyConfig
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


class HistoryPort(Protocol):
    def last_run(self, template: str, namespace: str, name: str) -> dict[str, Any] | None: ...
    def active_runs(self, namespace: str, name: str) -> list[dict[str, Any]]: ...
    def consecutive_failures(self, alert_name: str, namespace: str, name: str) -> int: ...
    def recent_launches(self, namespace: str, name: str, since: datetime) -> list[dict[str, Any]]: ...
    def target_lock(self, namespace: str, name: str) -> contextlib.AbstractContextManager[None]: ...
    def record_decision(
        self,
        *,
        fingerprint: str,
        alert_name: str,
        alert_status: str,
        decision: str,
        reason: str,
        template: str = "",
        dag_id: str = "",
        dag_run_id: str = "",
        target: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None: ...


class AirflowPort(Protocol):
    def dag_paused(self, dag_id: str) -> bool: ...
    def run_exists(self, dag_id: str, run_id: str) -> bool: ...
    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> bool: ...


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
    """Stateless per alert; ``history``/``airflow`` None means 'decide without them' (route preview)."""

    def __init__(
        self,
        router: Router,
        policy: PolicyConfig,
        *,
        history: HistoryPort | None = None,
        airflow: AirflowPort | None = None,
        max_failures: int = DEFAULT_MAX_FAILURES,
        launch_grace: timedelta = DEFAULT_LAUNCH_GRACE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.router = router
        self.policy = policy
        self.history = history
        self.airflow = airflow
        self.max_failures = max_failures
        self.launch_grace = launch_grace
        self.clock = clock

    def decide(self, alert: Alert) -> AlertDecision:
        """Decide, launch if due, and record the decision (when there is a history)."""
        route = self.router.route(alert.labels)
        decision = self._base(alert, route)
        if decision.decision is not Decision.TRIGGERED:
            self._record(decision)
            return decision
        assert route is not None
        with self._locked(decision.target):
            self._checked(alert, route, decision)
            self._record(decision)  # inside the lock: the next webhook sees this launch
        return decision

    # -- checks without I/O ---------------------------------------------------------------------
    def _base(self, alert: Alert, route: Route | None) -> AlertDecision:
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
            return self._set(d, Decision.RESOLVED, "alert resolved: recorded, never triggers")
        if route is None:
            names = self.router.candidates(alert.alertname)
            if names:
                why = (
                    f"templates {', '.join(names)} answer {alert.alertname} "
                    "but their label matchers exclude these labels"
                )
            else:
                why = f"no template answers alert {alert.alertname or '(no alertname label)'!r}"
            return self._set(d, Decision.NO_TEMPLATE, why)
        if target is NO_TARGET:
            why = f"{route.reason}; but no label names the object (pod, deployment, node...)"
            return self._set(d, Decision.NO_TARGET, why)
        if target.namespace and target.namespace in self.policy.protected_namespaces:
            return self._set(d, Decision.PROTECTED, f"namespace {target.namespace!r} is protected by policy")
        unmanaged = unmanaged_reason(alert, self.policy.require_label)
        if unmanaged:
            return self._set(d, Decision.PROTECTED, f"{target} is not managed: {unmanaged}")
        d.reason = route.reason
        return d

    @staticmethod
    def _set(d: AlertDecision, decision: Decision, reason: str) -> AlertDecision:
        d.decision, d.reason = decision, reason
        return d

    # -- checks against Airflow and the history (under the target lock) ---------------------------
    @contextlib.contextmanager
    def _locked(self, target: Target) -> Iterator[None]:
        if self.history is None:
            yield
            return
        with self.history.target_lock(target.namespace, target.name):
            yield

    def _checked(self, alert: Alert, route: Route, d: AlertDecision) -> None:
        template, target = route.template, d.target
        if self.airflow is not None:
            if self.airflow.run_exists(d.dag_id, d.dag_run_id):
                why = f"run {d.dag_run_id} already exists for this alert occurrence"
                self._set(d, Decision.DUPLICATE, why)
                return
            if self.airflow.dag_paused(d.dag_id):
                self._set(d, Decision.PAUSED, f"DAG {d.dag_id} is paused in Airflow; unpause it to remediate")
                return
        if self.history is not None and self._history_blocks(alert, route, d):
            return
        if self.airflow is None:
            notes = "dry run: nothing launched"
            if self.history is None:
                notes += "; decided on routing alone (no history: cooldown, busy, blocked not checked)"
            self._set(d, Decision.TRIGGERED, f"{route.reason}; would launch {d.dag_run_id} ({notes})")
            return
        conf = {"alert": alert.to_conf()}
        if self.airflow.trigger(template.dag_id, d.dag_run_id, conf):
            self._set(d, Decision.TRIGGERED, f"{route.reason}; launched run {d.dag_run_id} for {target}")
        else:
            self._set(d, Decision.DUPLICATE, f"run {d.dag_run_id} already exists (409): launched earlier")

    def _history_blocks(self, alert: Alert, route: Route, d: AlertDecision) -> bool:
        assert self.history is not None
        target, template, now = d.target, route.template, self.clock()
        failures = self.history.consecutive_failures(alert.alertname, target.namespace, target.name)
        if failures >= self.max_failures:
            self._set(
                d,
                Decision.BLOCKED,
                f"{failures} consecutive failed remediations of {alert.alertname} on {target} "
                f"(limit {self.max_failures}): a human must look; a successful run clears this",
            )
            return True
        active = self.history.active_runs(target.namespace, target.name)
        cooldown = template.configuration.cooldown
        launches = self.history.recent_launches(
            target.namespace, target.name, now - max(cooldown, self.launch_grace)
        )
        pending = [
            r
            for r in launches
            if r.get("run_status") is None and (_utc(r.get("received_at")) or now) >= now - self.launch_grace
        ]
        if active or pending:
            run = (active or pending)[0]
            self._set(d, Decision.BUSY, f"run {run.get('dag_run_id', '?')} for {target} is still active")
            return True
        last = self.history.last_run(template.name, target.namespace, target.name)
        started = [_utc(last.get("started_at")) if last else None] + [
            _utc(r.get("received_at")) for r in launches if r.get("template") == template.name
        ]
        recent = max((s for s in started if s is not None), default=None)
        if recent is not None and now - recent < cooldown:
            left = cooldown - (now - recent)
            self._set(
                d,
                Decision.COOLDOWN,
                f"{template.name} remediated {target} at {recent:%Y-%m-%dT%H:%M:%SZ}; cooldown "
                f"{cooldown} has {int(left.total_seconds())}s left",
            )
            return True
        return False

    def _record(self, d: AlertDecision) -> None:
        if self.history is None:
            return
        try:
            self.history.record_decision(
                fingerprint=d.fingerprint,
                alert_name=d.alertname,
                alert_status=d.status,
                decision=str(d.decision),
                reason=d.reason,
                template=d.template,
                dag_id=d.dag_id,
                dag_run_id=d.dag_run_id,
                target=d.target.as_dict(),
                labels=d.labels,
            )
        except Exception as exc:  # the decision stands; losing its record must not fail the webhook
            log.error(
                "kubernaut intake: could not record decision %s for %s: %s", d.decision, d.fingerprint, exc
            )
