"""Alertmanager-backed actions: wait for an alert to resolve; silence alerts (undo: expire)."""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import timedelta
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionParams,
    ActionResult,
    VerificationFailed,
    wait_error,
)
from kubernaut.actions.monitoring_common import alertmanager, bounded_wait, deadline, wait_within
from kubernaut.actions.registry import register
from kubernaut.durations import Duration
from kubernaut.services.alertmanager import AlertmanagerClient, LabelMatcher, matchers_from
from kubernaut.waits.spec import WaitOutcome

MAX_SILENCE = timedelta(days=7)


def _label_names(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        LabelMatcher(name=name, value="")  # same name rules as a matcher
    return value


class AlertResolvedParams(ActionParams):
    alertname: str = Field(min_length=1, max_length=256, description="The alert's `alertname` label")
    labels: dict[str, str] = Field(default_factory=dict, description="Further labels that must equal")
    matchers: list[LabelMatcher] = Field(default_factory=list, description="Further matchers (=, !=, =~, !~)")
    wait_timeout: Duration | None = Field(
        default=timedelta(minutes=5), description="Poll until resolved, up to this long (null: check once)"
    )
    ignore_silenced: bool = Field(default=False, description="Count a silenced alert as resolved")

    _names = field_validator("labels")(_label_names)

    _wait = field_validator("wait_timeout")(bounded_wait)

    def all_matchers(self) -> list[LabelMatcher]:
        return matchers_from({**self.labels, "alertname": self.alertname}, self.matchers)


@register
class CheckAlertResolved(Action[AlertResolvedParams]):
    kind = "monitoring"
    name = "check_alert_resolved"
    Params = AlertResolvedParams
    summary = "Wait until Alertmanager has no active alert with this alertname and labels."

    def run(self, ctx: ActionContext, params: AlertResolvedParams) -> ActionResult:
        # The check itself is kubernaut.waits.alertmanager: once, or polled up to wait_timeout.
        matchers = params.all_matchers()
        args = {
            "conn_id": ctx.config.alertmanager_conn_id,
            "matchers": [m.model_dump() for m in matchers],
            "silenced": not params.ignore_silenced,
        }
        what = "alert " + ", ".join(m.to_filter() for m in matchers) + " resolved"
        within = wait_within(ctx, params.wait_timeout)
        return ActionResult(wait=ctx.wait("alerts_resolved", args, what=what, within=within, wording="holds"))

    def after_wait(
        self, ctx: ActionContext, params: AlertResolvedParams, result: ActionResult, outcome: WaitOutcome
    ) -> ActionResult:
        if not outcome.done:
            raise wait_error(outcome)
        return ActionResult(output=dict(outcome.detail))


class SilenceParams(ActionParams):
    labels: dict[str, str] = Field(default_factory=dict, description="Labels that must equal, e.g. alertname")
    matchers: list[LabelMatcher] = Field(default_factory=list, description="Further matchers (=, !=, =~, !~)")
    duration: Duration = Field(default=timedelta(hours=1), description="How long the silence lasts")
    comment: str = Field(
        default="Silenced by kubernaut during automated remediation", min_length=1, max_length=1000
    )
    created_by: str = Field(default="kubernaut", min_length=1, max_length=256, alias="createdBy")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    _names = field_validator("labels")(_label_names)

    @field_validator("duration")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= MAX_SILENCE:
            raise ValueError(f"duration must be between 1s and {MAX_SILENCE}")
        return value

    @model_validator(mode="after")
    def _narrow(self) -> SilenceParams:
        # A silence of only negative or empty matchers would hide (nearly) every alert.
        if not any(m.is_equal and m.value for m in self.all_matchers()):
            raise ValueError("a silence needs at least one positive matcher with a non-empty value")
        return self

    def all_matchers(self) -> list[LabelMatcher]:
        return matchers_from(self.labels, self.matchers)


def _marker_comment(comment: str, marker: str) -> str:
    return f"{comment} [kubernaut:{marker}]"


@register
class SilenceAlert(Action[SilenceParams]):
    kind = "monitoring"
    name = "silence_alert"
    Params = SilenceParams
    mutating = True
    summary = "Create an Alertmanager silence for matching alerts for a bounded duration."
    changes = "creates an Alertmanager silence (matchers, duration, comment, createdBy)"
    undo_doc = "expires the silence (DELETE /api/v2/silence/{id}); again is a no-op"
    dry_run_doc = "Alertmanager reached and silence validated, not created"

    def run(self, ctx: ActionContext, params: SilenceParams) -> ActionResult:
        matchers = params.all_matchers()
        conn_id = ctx.config.alertmanager_conn_id
        client = alertmanager(ctx, conn_id)
        try:
            if ctx.dry_run:
                client.status(deadline=deadline(ctx))  # reachable and authorised
                output = {"silence_id": None, "matchers": [m.to_filter() for m in matchers], "dry_run": True}
                return ActionResult(output={**output, "ends_in_s": params.duration.total_seconds()})
            prior = ctx.prior_undo
            if prior is not None:
                existing = _find_by_marker(client, prior["marker"], ctx)
                if existing is not None:
                    # An interrupted earlier attempt created it: never silence twice.
                    undo = {**prior, "silence_id": existing["id"]}
                    output = {
                        "silence_id": existing["id"],
                        "ends_at": existing.get("endsAt"),
                        "already_done": True,
                    }
                    return ActionResult(output=output, undo=undo, changed=True)
            undo = ctx.remember_prior(
                {"marker": uuid.uuid4().hex, "conn_id": conn_id, "matchers": [m.to_api() for m in matchers]}
            )
            now = dt.datetime.now(dt.UTC)
            silence_id = client.create_silence(
                matchers,
                starts_at=now,
                ends_at=now + params.duration,
                created_by=params.created_by,
                comment=_marker_comment(params.comment, undo["marker"]),
                deadline=deadline(ctx),
            )
        finally:
            client.close()
        ends_at = (now + params.duration).isoformat(timespec="seconds")
        return ActionResult(
            output={
                "silence_id": silence_id,
                "ends_at": ends_at,
                "matchers": [m.to_filter() for m in matchers],
            },
            undo={**undo, "silence_id": silence_id},
            changed=True,
        )

    def verify(self, ctx: ActionContext, params: SilenceParams, result: ActionResult) -> None:
        client = alertmanager(ctx, (result.undo or {}).get("conn_id"))
        try:
            silence = client.silence(result.output["silence_id"], deadline=deadline(ctx))
        finally:
            client.close()
        state = (silence or {}).get("status", {}).get("state")
        if state not in ("active", "pending"):
            raise VerificationFailed(
                f"silence {result.output['silence_id']} is {state or 'unknown'}, not active"
            )

    def undo(self, ctx: ActionContext, params: SilenceParams, record: dict[str, Any]) -> dict[str, Any]:
        client = alertmanager(ctx, record.get("conn_id"))
        try:
            ids = [record["silence_id"]] if record.get("silence_id") else []
            if not ids:  # interrupted before the id was known: find it by its marker
                found = _find_by_marker(client, record["marker"], ctx)
                ids = [found["id"]] if found else []
            if ctx.dry_run:
                return {"expired": [], "would_expire": ids, "dry_run": True}
            expired = [i for i in ids if client.expire_silence(i, deadline=deadline(ctx))]
        finally:
            client.close()
        return {"expired": expired, "already_expired": [i for i in ids if i not in expired]}


def _find_by_marker(client: AlertmanagerClient, marker: str, ctx: ActionContext) -> dict[str, Any] | None:
    """The unexpired silence this step created (its comment carries the step's marker).

    Listed unfiltered: Alertmanager's silence filter does not match regex matchers reliably.
    """
    tag = f"[kubernaut:{marker}]"
    for silence in client.silences([], deadline=deadline(ctx)):
        if tag in silence.get("comment", "") and silence.get("status", {}).get("state") != "expired":
            found: dict[str, Any] = silence
            return found
    return None
