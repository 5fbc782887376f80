"""The webhook's flow for one alert: never blocks the server it lives in, launches at most one
run per target, and never leaves a run without its record.

1. ``Decider.classify`` (no I/O): resolved, no_template, no_target, protected.
2. duplicate, read from the history without any lock: a launch record for this run id
   (``triggered``, or ``triggering`` still in flight) answers at once, Airflow is not called.
   An ``unconfirmed`` record (Airflow did not answer the POST) is taken over: the POST is
   repeated (the run id makes it idempotent) and the record settled. A target this process
   is launching for right now is ``busy`` in the same trip (what the claim would find).
3. paused: Airflow, cached for a few seconds, asynchronously; no lock is held.
4. the claim: one short transaction with the target's try-lock; a taken lock means another
   alert for the target is being decided right now: ``busy`` at once. Inside: duplicate again,
   blocked, busy, cooldown; if none applies, the ``triggering`` record is written and
   committed *before* the POST.
5. the POST; its answer settles the record: ``triggered`` (201, or 409 after an attempt whose
   outcome was unknown), ``duplicate`` (409: the run existed before), ``launch_failed``
   (Airflow refused: no run exists; 503), or ``unconfirmed`` (no answer and the run cannot be
   seen: 503, and the next delivery confirms it). After an unanswered POST the run is looked
   up first, so a run that was created is recorded ``triggered`` and answered 200.

History work runs on the service's own small thread pool (the driver blocks); Airflow calls
are ``async``: no thread of the api-server's pool waits for the api-server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread

from kubernaut.alert import derive_target
from kubernaut.config import EscalationConfig
from kubernaut.intake.airflow_client import AirflowUnavailable, Triggered
from kubernaut.intake.decisions import (
    AirflowPort,
    AlertDecision,
    Decider,
    Decision,
    HistoryPort,
    dag_run_id,
    decision_fields,
    set_decision,
)
from kubernaut.intake.evidence import FALLBACK_MARK
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Route
from kubernaut.notifiers import escalation
from kubernaut.templates import Template

log = logging.getLogger(__name__)
_ESCALATING: set[asyncio.Task[None]] = set()
T = TypeVar("T")
# History-only states of a launch record (the webhook answers triggered/duplicate or 503).
TRIGGERING, UNCONFIRMED, LAUNCH_FAILED = "triggering", "unconfirmed", "launch_failed"
# Longer than any launch attempt (4 attempts x 10 s timeout + backoff): a ``triggering`` record
# older than this was abandoned (process killed mid-POST) and may be taken over.
DEFAULT_IN_FLIGHT_SECONDS = 120.0
FOLLOW_SECONDS = 2.0  # how long a concurrent delivery of the same occurrence waits for the first


@dataclass
class InFlight:
    """What this process is deciding right now (one event loop): the first delivery of each
    occurrence being decided, and the targets whose launch is under way (record written,
    POST not yet answered): another alert for such a target is ``busy`` without the claim."""

    runs: dict[str, asyncio.Future[AlertDecision]] = field(default_factory=dict)
    targets: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (cluster, namespace, name)


def fallback_run_id(occurrence_run_id: str, template: str) -> str:
    """A fallback's run id: distinct from the occurrence's own, the same on every attempt."""
    return f"{occurrence_run_id}{FALLBACK_MARK}{template}"


class HistoryRunner(Protocol):
    def __call__(self, work: Callable[[HistoryPort], T]) -> Awaitable[T]: ...


class Launcher:
    """Decides alerts one by one (``decide``); shares ``inflight`` with the other payloads of the
    process so that concurrent deliveries of one occurrence get one answer, and concurrent
    alerts for a target being launched get ``busy`` cheaply."""

    def __init__(
        self,
        decider: Decider,
        history: HistoryRunner,
        airflow: AirflowPort,
        *,
        inflight: InFlight | None = None,
        in_flight_seconds: float = DEFAULT_IN_FLIGHT_SECONDS,
    ) -> None:
        self.decider = decider
        self.history = history
        self.airflow = airflow
        self.inflight = InFlight() if inflight is None else inflight
        self.in_flight_seconds = in_flight_seconds
        self.escalation: EscalationConfig | None = None  # escalate `blocked` (kubernaut.notifiers)

    async def decide(self, alert: Alert) -> AlertDecision:
        d, route = self.decider.classify(alert)
        if d.decision is not Decision.TRIGGERED or route is None:
            await self._record(d)
            return d
        leader = self.inflight.runs.get(d.dag_run_id)
        if leader is not None:
            followed = await self._follow(leader, d)
            if followed is not None:
                return followed
        future: asyncio.Future[AlertDecision] = asyncio.get_running_loop().create_future()
        self.inflight.runs[d.dag_run_id] = future
        try:
            result = await self._decide(alert, route, d)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: followers that gave up must not log "never retrieved"
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            future.set_result(result)
            return result
        finally:
            if self.inflight.runs.get(d.dag_run_id) is future:
                del self.inflight.runs[d.dag_run_id]

    async def fallback(self, alert: Alert, template: Template, of_run: str, why: str) -> AlertDecision:
        """Launch ``template`` for the alert occurrence that run ``of_run`` answered (a fallback,
        kubernaut.intake.fallback): its own deterministic run id, so at most once; the same
        checks as any alert (protected, duplicate, paused, suppressed, blocked, busy,
        cooldown), except backoff, which spaces repeat runs."""
        forced = Route(template, 0, f"fallback of run {of_run} ({why}): template {template.name!r}")
        d, route = self.decider.classify(alert, forced)
        d.fallback_of = of_run
        d.dag_run_id = fallback_run_id(dag_run_id(alert), template.name)
        if d.decision is not Decision.TRIGGERED or route is None:
            await self._record(d)
            return d
        return await self._decide(alert, route, d)

    async def _follow(self, leader: asyncio.Future[AlertDecision], d: AlertDecision) -> AlertDecision | None:
        """Another delivery of this occurrence is being decided in this process: its answer,
        recorded for this delivery too (None: it failed or took too long; decide on our own)."""
        try:
            first = await asyncio.wait_for(asyncio.shield(leader), FOLLOW_SECONDS)
        except asyncio.CancelledError:
            if leader.cancelled():
                return None
            raise  # this request itself was cancelled
        except Exception:  # TimeoutError, or the first delivery's failure (its own answer)
            return None
        if first.decision in (Decision.TRIGGERED, Decision.DUPLICATE):
            why = f"run {d.dag_run_id} launched for this alert occurrence by a concurrent delivery"
            set_decision(d, Decision.DUPLICATE, why)
        else:
            set_decision(d, first.decision, first.reason)
        await self._record(d)
        return d

    async def _decide(self, alert: Alert, route: Route, d: AlertDecision) -> AlertDecision:
        launching = self.inflight.targets.get((d.cluster, d.target.namespace, d.target.name))
        if len(route.tied()) > 1:  # the learned choice (the history's figures) and earlier launches
            tied = route

            def choose(h: HistoryPort) -> Route:
                return self._choose(h, alert, tied, d)

            route = await self.history(choose)
        record = await self.history(lambda h: self._known_launch(h, d, launching))
        if d.decision is not Decision.TRIGGERED:
            return d
        if record is not None:
            reason = f"confirming launch of run {d.dag_run_id} (its record was {record['decision']})"
            if await self.history(
                lambda h: h.take_over_launch(int(record["id"]), reason, self.in_flight_seconds)
            ):
                return await self._launch(alert, route, d, int(record["id"]), retaken=True)
            set_decision(d, Decision.DUPLICATE, f"run {d.dag_run_id} is being launched by another delivery")
            await self._record(d)
            return d
        if await self.airflow.dag_paused(d.dag_id):
            set_decision(d, Decision.PAUSED, f"DAG {d.dag_id} is paused in Airflow; unpause it to remediate")
            await self._record(d)
            return d
        if self.decider.suppressor is not None:  # the cluster and Alertmanager: on the pool, no lock held
            if await self.history(lambda h: self.decider.suppress(alert, route, d, h)):
                await self._record(d)
                return d
        row_id = await self.history(lambda h: self._claim(h, alert, route, d))
        if row_id is None:
            self._escalate(d)  # blocked: a person must look
            return d
        return await self._launch(alert, route, d, row_id, retaken=False)

    def _choose(self, history: HistoryPort, alert: Alert, route: Route, d: AlertDecision) -> Route:
        """Several templates answer: the one an earlier delivery of this occurrence launched, if
        any (the figures may have changed since: never a second run for one occurrence); else
        the learned choice among the equally specific ones (kubernaut.intake.choice)."""
        if not d.fallback_of:
            for specificity, template in route.alternatives:
                if history.launch_of(template.dag_id, d.dag_run_id) is not None:
                    d.template, d.dag_id = template.name, template.dag_id
                    why = f"template {template.name!r} was chosen for this alert occurrence before"
                    return Route(template, specificity, why, route.alternatives)
            return self.decider.choose(history, alert, route, d)
        return route

    def _known_launch(
        self, history: HistoryPort, d: AlertDecision, launching: str | None
    ) -> dict[str, Any] | None:
        """The launch record of this occurrence; a known one decides (and records) ``duplicate``
        here, in the same trip to the pool: re-deliveries are the bulk of a storm. Else, if this
        process is launching a run for the target, ``busy`` (what the claim would find)."""
        record = history.launch_of(d.dag_id, d.dag_run_id)
        if record is not None and self._known(record):
            why = f"run {d.dag_run_id} already launched for this alert occurrence ({record['decision']})"
            set_decision(d, Decision.DUPLICATE, why)
            self._record_here(history, d)
        elif record is None and launching is not None:
            set_decision(d, Decision.BUSY, f"run {launching} for {d.target} is being launched right now")
            self._record_here(history, d)
        return record

    def _known(self, record: dict[str, Any]) -> bool:
        """A launch nobody needs to confirm: triggered, the run has recorded itself, or in flight."""
        if record["decision"] == "triggered" or record.get("run_status") is not None:
            return True
        return record["decision"] == TRIGGERING and float(record.get("age_s") or 0) < self.in_flight_seconds

    def _claim(self, history: HistoryPort, alert: Alert, route: Route, d: AlertDecision) -> int | None:
        """In the target's claim (a worker thread): the row id of the new ``triggering`` record,
        or None with ``d`` decided and recorded."""
        target = d.target
        scope = {"cluster": d.cluster} if d.cluster else {}  # the same name in two clusters: two targets
        with history.target_claim(target.namespace, target.name, **scope) as acquired:
            if not acquired:
                why = f"another alert for {target} is being decided right now; it may launch a run"
                set_decision(d, Decision.BUSY, why)
            elif (record := history.launch_of(d.dag_id, d.dag_run_id)) is not None:
                why = f"run {d.dag_run_id} already launched for this alert occurrence ({record['decision']})"
                set_decision(d, Decision.DUPLICATE, why)
            else:
                facts = self.decider.facts(history, alert, route, target, d.cluster)
                if not self.decider.judge(alert, route, d, facts):
                    d.reason = f"{route.reason}; launching run {d.dag_run_id} for {target}"
                    return history.insert_decision(**decision_fields(d, TRIGGERING))
            history.insert_decision(**decision_fields(d))
        return None

    async def _launch(
        self, alert: Alert, route: Route, d: AlertDecision, row_id: int, *, retaken: bool
    ) -> AlertDecision:
        """POST the run and settle its record; shielded: a dropped connection must not leave the
        record ``triggering`` while the run is created."""
        key = (d.cluster, d.target.namespace, d.target.name)
        self.inflight.targets[key] = d.dag_run_id
        try:
            with anyio.CancelScope(shield=True):
                await self._launch_unshielded(alert, route, d, row_id, retaken=retaken)
        finally:
            if self.inflight.targets.get(key) == d.dag_run_id:
                del self.inflight.targets[key]
        return d

    async def _launch_unshielded(
        self, alert: Alert, route: Route, d: AlertDecision, row_id: int, *, retaken: bool
    ) -> AlertDecision:
        target, run = d.target, d.dag_run_id
        try:
            conf: dict[str, Any] = {"alert": alert.to_conf()}
            if d.cluster:  # multi-cluster: every task of the run uses this (kubernaut.clusters)
                conf["cluster"] = {"name": d.cluster, "conn_id": d.kube_conn_id}
            if d.fallback_of:
                conf["fallback_of"] = d.fallback_of
            if derive_target(alert.labels) != target:  # the template's `target:` (intake.targets)
                conf["target"] = target.as_dict()  # the run records it, so busy/blocks count it
            outcome = await self.airflow.trigger(route.template.dag_id, run, conf)
        except AirflowUnavailable as exc:
            if not exc.uncertain:
                await self._settle(row_id, LAUNCH_FAILED, f"Airflow did not create run {run}: {exc}")
                raise
            try:
                exists = await self.airflow.run_exists(route.template.dag_id, run, attempts=1)
            except AirflowUnavailable:
                exists = False
            if not exists:
                why = (
                    f"launch of run {run} requested, Airflow did not confirm ({exc}); the next delivery will"
                )
                await self._settle(row_id, UNCONFIRMED, why)
                raise
            outcome = Triggered.EXISTED_AFTER_RETRY
        if outcome is Triggered.EXISTED and not retaken:
            set_decision(
                d, Decision.DUPLICATE, f"run {run} already exists in Airflow (409): launched earlier"
            )
        else:
            how = {
                Triggered.CREATED: "launched",
                Triggered.EXISTED_AFTER_RETRY: "launched (confirmed after an unanswered attempt)",
                Triggered.EXISTED: "launched (confirmed: it exists)",
            }[outcome]
            set_decision(d, Decision.TRIGGERED, f"{route.reason}; {how} run {run} for {target}")
        await self._settle(row_id, str(d.decision), d.reason)
        return d

    async def _settle(self, row_id: int, decision: str, reason: str) -> None:
        try:
            await self.history(lambda h: h.settle_launch(row_id, decision, reason))
        except Exception as exc:  # the launch record stays; a redelivery confirms it
            log.error("kubernaut intake: could not settle launch record %s as %s: %s", row_id, decision, exc)

    def _escalate(self, d: AlertDecision) -> None:
        """A person must look: the notifiers, in the background (the webhook answers without
        waiting for them); once per alert occurrence, recorded in the history."""
        config = self.escalation
        if config is None or str(d.decision) != "blocked" or not escalation.enabled(config, "blocked"):
            return
        e = escalation.of_decision(d)
        task = asyncio.get_running_loop().create_task(self._send_escalation(config, e))
        _ESCALATING.add(task)  # a reference until done: the loop keeps only weak ones
        task.add_done_callback(_ESCALATING.discard)

    async def _send_escalation(self, config: EscalationConfig, e: escalation.Escalation) -> None:
        try:
            done = await self.history(lambda h: escalation.claim(h, e))
            if done is None:  # sent already (an earlier delivery of this alert occurrence)
                return
            results = await anyio.to_thread.run_sync(lambda: escalation.deliver(config, e, done=done))
            for r in results:
                if r["status"] == "failed":
                    log.error(
                        "kubernaut intake: escalation %s of %s via %s failed: %s",
                        e.outcome,
                        e.subject,
                        r["notifier"],
                        r["error"],
                    )
            await self.history(lambda h: escalation.settle(h, e, results))
        except Exception as exc:  # never the intake's problem
            log.error(
                "kubernaut intake: escalation %s of %s: %s", e.outcome, e.subject, escalation.clean_error(exc)
            )

    async def _record(self, d: AlertDecision) -> None:
        await self.history(lambda h: self._record_here(h, d))

    @staticmethod
    def _record_here(history: HistoryPort, d: AlertDecision) -> None:
        try:
            history.insert_decision(**decision_fields(d))
        except Exception as exc:  # the decision stands; losing its record must not fail the webhook
            log.error("kubernaut intake: could not record %s for %s: %s", d.decision, d.fingerprint, exc)
