"""One decision per alert: route it, apply the safety checks, launch at most one run.

Order matters and is cheapest-first: resolved -> no_template -> no_target -> no_cluster ->
protected (no I/O; an alert whose labels name no object takes the template's declared
``target:`` once its cluster is known, ``kubernaut.intake.targets``), then duplicate
(history) -> paused (Airflow, cached) -> suppressed (the cluster, Alertmanager, history;
``kubernaut.intake.suppression``) -> blocked (consecutive failures, ineffective chain) -> busy
-> cooldown -> backoff (history, inside the per-target claim; ``kubernaut.intake.backoff``) ->
trigger. The I/O-free checks live here; the launching flow (claim, launch record, POST) is
``kubernaut.intake.launcher``. See docs/blocking.md.
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
from kubernaut.clusters import ClusterMap, NoCluster
from kubernaut.config import BlockingConfig, ChoiceConfig, PolicyConfig
from kubernaut.intake.airflow_client import Triggered
from kubernaut.intake.backoff import backoff_of, chain_block, target_arg
from kubernaut.intake.choice import Candidate, explain, occurrence_seed, rank
from kubernaut.intake.evidence import template_outcomes
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Route, Router, informational
from kubernaut.intake.suppression import Suppressor
from kubernaut.intake.targets import TargetUnresolved, template_target
from kubernaut.template_params import TemplateParameters

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
    NO_CLUSTER = "no_cluster"
    PAUSED = "paused"
    BACKOFF = "backoff"
    SUPPRESSED = "suppressed"


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
    until: datetime | None = None  # backoff: when it ends
    root_cause: dict[str, Any] | None = None  # suppressed: the alert (or run) that is the cause
    cluster: str = ""  # "" in single-cluster mode (kubernaut.clusters)
    kube_conn_id: str = ""  # the Kubernetes connection a launched run uses
    fallback_of: str = ""  # a fallback (kubernaut.intake.fallback): the run id it follows

    def to_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.fallback_of:
            extra["fallback_of"] = self.fallback_of
        if self.until is not None:
            extra["until"] = self.until.isoformat().replace("+00:00", "Z")
        if self.root_cause is not None:
            extra["root_cause"] = self.root_cause
        return {
            "fingerprint": self.fingerprint,
            "alertname": self.alertname,
            "status": self.status,
            "decision": str(self.decision),
            "template": self.template,
            "dag_id": self.dag_id,
            "dag_run_id": self.dag_run_id,
            "target": self.target.as_dict(),
            "cluster": self.cluster,
            "kube_conn_id": self.kube_conn_id,
            "reason": self.reason,
            **extra,
        }


class HistoryReader(Protocol):
    """What the checks read (also the route preview, which writes nothing)."""

    # ``cluster``: multi-cluster only (the same name in two clusters is two targets).
    def last_run(
        self, template: str, namespace: str, name: str, *, cluster: str = ""
    ) -> dict[str, Any] | None: ...
    def active_runs(self, namespace: str, name: str, *, cluster: str = "") -> list[dict[str, Any]]: ...
    def consecutive_failures(
        self, alert_name: str, namespace: str, name: str, *, cluster: str = ""
    ) -> int: ...
    def recent_launches(
        self, namespace: str, name: str, since: datetime, *, cluster: str = ""
    ) -> list[dict[str, Any]]: ...
    def recent_runs(
        self, namespace: str, name: str, since: datetime, *, cluster: str = ""
    ) -> list[dict[str, Any]]: ...
    def ineffective_runs(
        self, alert_name: str, namespace: str, name: str, since: datetime, *, cluster: str = ""
    ) -> list[dict[str, Any]]: ...
    def recent_alerts(self, patterns: list[str], since: datetime) -> list[dict[str, Any]]: ...


class HistoryPort(HistoryReader, Protocol):
    """The webhook's history: reads, launch records and the per-target claim (see history_checks)."""

    def ping(self) -> None: ...
    def launch_of(self, dag_id: str, dag_run_id: str) -> dict[str, Any] | None: ...
    def target_claim(
        self, namespace: str, name: str, *, cluster: str = ""
    ) -> contextlib.AbstractContextManager[bool]: ...
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
    recent_runs: list[dict[str, Any]] = field(default_factory=list)  # backoff
    ineffective: list[dict[str, Any]] = field(default_factory=list)  # ineffective chain

    @classmethod
    def read(
        cls,
        history: HistoryReader,
        alert: Alert,
        template: str,
        target: Target,
        since: datetime,
        blocking: BlockingConfig | None = None,
        now: datetime | None = None,
        cluster: str = "",
    ) -> HistoryFacts:
        blocking = blocking or BlockingConfig()
        now = now or datetime.now(UTC)
        ns, name = target.namespace, target.name
        chain = blocking.ineffective_chain
        # A target is (cluster, namespace, name); no keyword at all in single-cluster mode.
        scope = {"cluster": cluster} if cluster else {}
        return cls(
            failures=history.consecutive_failures(alert.alertname, ns, name, **scope),
            active=history.active_runs(ns, name, **scope),
            launches=history.recent_launches(ns, name, since, **scope),
            last=history.last_run(template, ns, name, **scope),
            recent_runs=(
                history.recent_runs(ns, name, now - blocking.backoff.window, **scope)
                if blocking.backoff.base
                else []
            ),
            ineffective=(
                history.ineffective_runs(alert.alertname, ns, name, now - chain.window, **scope)
                if chain.runs
                else []
            ),
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
        blocking: BlockingConfig | None = None,
        clusters: ClusterMap | None = None,
        suppressor: Suppressor | None = None,
    ) -> None:
        self.router = router
        self.policy = policy
        self.suppressor = suppressor  # symptom suppression (kubernaut.intake.suppression); None: off
        self.clusters = clusters or ClusterMap({})  # none: single-cluster mode
        self.blocking = blocking or BlockingConfig()
        self.history = history
        self.max_failures = max_failures
        self.launch_grace = launch_grace
        self.clock = clock
        self.choice = ChoiceConfig()  # the learned choice among equally specific templates
        # Configured template parameters (kubernaut.template_params): a template's `target:`
        # for alerts whose labels name no object renders with them.
        self.parameters = TemplateParameters()

    def decide(self, alert: Alert) -> AlertDecision:
        """Preview: what the webhook would decide, short of Airflow (paused/duplicate not checked)."""
        d, route = self.classify(alert)
        if d.decision is not Decision.TRIGGERED:
            return d
        assert route is not None
        if self.history is not None:
            route = self.choose(self.history, alert, route, d)
        if self.suppress(alert, route, d, self.history):
            return d
        if self.history is not None:
            facts = self.facts(self.history, alert, route, d.target, d.cluster)
            if self.judge(alert, route, d, facts):
                return d
        notes = "dry run: nothing launched"
        if self.history is None:
            notes += "; decided on routing alone (no history: cooldown, busy, blocked not checked)"
        return set_decision(d, Decision.TRIGGERED, f"{route.reason}; would launch {d.dag_run_id} ({notes})")

    # -- checks without I/O ---------------------------------------------------------------------
    def classify(self, alert: Alert, forced: Route | None = None) -> tuple[AlertDecision, Route | None]:
        """resolved, no_template, no_target, protected; else TRIGGERED (pending the I/O checks).
        ``forced``: this route, not the router's (a fallback names its template)."""
        route = forced if forced is not None else self.router.route(alert.labels)
        target = derive_target(alert.labels)
        if forced is None and route is not None and len(route.tied()) > 1:  # no history: by priority
            route = self.ranked(route, alert, target.kind, target.namespace, None)
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
            if names and informational(alert.labels):
                why = (
                    f"informational alert (severity={alert.labels.get('severity')!r}): left alone unless a "
                    f"template selects it with a `severity` matcher; {', '.join(names)} answer "
                    f"{alert.alertname} but none selects it"
                )
            elif names:
                why = (
                    f"templates {', '.join(names)} answer {alert.alertname} "
                    "but their label matchers exclude these labels"
                )
            else:
                why = f"no template answers alert {alert.alertname or '(no alertname label)'!r}"
            return set_decision(d, Decision.NO_TEMPLATE, why), route
        if target is NO_TARGET and route.template.target is None:
            why = f"{route.reason}; but no label names the object (pod, deployment, node...)"
            return set_decision(d, Decision.NO_TARGET, why), route
        cluster = self.clusters.choose(alert.labels, route.template.configuration.kubernetes_conn_id)
        if isinstance(cluster, NoCluster):  # never sent to another (or the default) cluster
            d.cluster = cluster.name
            return set_decision(d, Decision.NO_CLUSTER, f"{route.reason}; but {cluster.reason}"), route
        d.cluster, d.kube_conn_id = cluster.name, cluster.conn_id
        if target is NO_TARGET:  # a cluster-wide alert: the template's declared target
            try:
                target = d.target = template_target(route.template, alert, self.parameters, cluster.name)
            except TargetUnresolved as exc:
                why = f"{route.reason}; but no label names the object and {exc}"
                return set_decision(d, Decision.NO_TARGET, why), route
        if target.namespace and target.namespace in self.policy.protected_namespaces:
            why = f"namespace {target.namespace!r} is protected by policy"
            return set_decision(d, Decision.PROTECTED, why), route
        unmanaged = unmanaged_reason(alert, self.policy.require_label)
        if unmanaged:
            return set_decision(d, Decision.PROTECTED, f"{target} is not managed: {unmanaged}"), route
        d.reason = route.reason
        return d, route

    # -- the learned choice among equally specific templates (kubernaut.intake.choice) -----------
    def ranked(self, route: Route, alert: Alert, kind: str, namespace: str, history: object | None) -> Route:
        """``route`` with the template the learned choice puts first among the tied ones, its
        reason naming the figures; ``history`` None: ranked by priority."""
        tied = route.tied()
        if len(tied) < 2:
            return route
        evidence = None
        if history is not None:
            since = self.clock() - self.choice.window
            evidence = template_outcomes(history, alert.alertname, kind, [t.name for t in tied], since)
        ranking = rank(
            [Candidate(t.name, route.specificity, t.priority) for t in tied],
            evidence,
            namespace=namespace,
            seed=occurrence_seed(self.choice.seed, alert.fingerprint, alert.startsAt),
            prior_strength=self.choice.prior_strength,
            namespace_runs=self.choice.namespace_runs,
        )
        chosen = next(t for t in tied if t.name == ranking[0].name)
        reason = f"template {chosen.name!r} answers {alert.alertname}; {explain(ranking)}"
        less = [f"{t.name!r} ({s} matchers)" for s, t in route.alternatives if s < route.specificity]
        if less:
            reason += f"; more specific ({route.specificity} matchers) than {', '.join(less)}"
        return Route(chosen, route.specificity, reason, route.alternatives)

    def choose(self, history: object | None, alert: Alert, route: Route, d: AlertDecision) -> Route:
        """The learned choice with the history's figures; ``d`` follows the chosen template."""
        if len(route.tied()) < 2:
            return route
        chosen = self.ranked(route, alert, d.target.kind, d.target.namespace, history)
        d.template, d.dag_id, d.reason = chosen.template.name, chosen.template.dag_id, chosen.reason
        return chosen

    # -- checks against the history's facts ------------------------------------------------------
    def since(self, route: Route) -> datetime:
        """How far back launches matter: the cooldown, or the grace for a launch to show up as a run."""
        return self.clock() - max(route.template.configuration.cooldown, self.launch_grace)

    def facts(
        self, history: HistoryReader, alert: Alert, route: Route, target: Target, cluster: str = ""
    ) -> HistoryFacts:
        return HistoryFacts.read(
            history,
            alert,
            route.template.name,
            target,
            self.since(route),
            self.blocking,
            self.clock(),
            cluster=cluster,
        )

    def suppress(self, alert: Alert, route: Route, d: AlertDecision, history: HistoryReader | None) -> bool:
        """``suppressed`` when the alert is a symptom of an active node alert or of an owner
        being remediated (blocking I/O: the cluster, Alertmanager; run it off the event loop)."""
        if self.suppressor is None:
            return False
        conn_id = d.kube_conn_id or route.template.configuration.kubernetes_conn_id
        found = self.suppressor.judge(alert, d.target, conn_id, history, d.cluster)
        if found is None:
            return False
        set_decision(d, Decision.SUPPRESSED, found[0])
        d.root_cause = found[1]
        return True

    def judge(self, alert: Alert, route: Route, d: AlertDecision, facts: HistoryFacts) -> bool:
        """blocked -> ineffective chain (blocked) -> busy -> cooldown -> backoff; True (and
        ``d`` set) when one applies."""
        target, template, now = d.target, route.template, self.clock()
        if facts.failures >= self.max_failures:
            set_decision(
                d,
                Decision.BLOCKED,
                f"{facts.failures} consecutive failed remediations of {alert.alertname} on {target} "
                f"(limit {self.max_failures}): a human must look; a successful run or "
                f"`kubernaut unblock {target_arg(str(target))}` clears this",
            )
            return True
        chain = chain_block(facts.ineffective, self.blocking.ineffective_chain, alert.alertname, str(target))
        if chain is not None:
            set_decision(d, Decision.BLOCKED, chain)
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
        # A fallback is the next remedy for the same occurrence (once), not a repeat run:
        # backoff spaces repeats; the other blocks apply to it as to any run.
        repeats = [] if d.fallback_of else facts.recent_runs
        backoff = backoff_of(repeats, now, self.blocking.backoff, str(target))
        if backoff is not None:
            set_decision(d, Decision.BACKOFF, backoff.reason)
            d.until = backoff.until
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
        "cluster": d.cluster,
    }
