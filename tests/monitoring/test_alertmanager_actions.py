"""check_alert_resolved and silence_alert against a real Alertmanager."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from kubernaut.actions import ActionContext, VerificationFailed, registry
from kubernaut.testing import ParamsInvalid, UndoJournal, assert_undo_idempotent, run_action, run_undo
from kubernaut.testing.services import MonitoringStack, fire_alert, resolve_alert

Ctx = Callable[..., ActionContext]
resolved_action = registry.get("monitoring", "check_alert_resolved")
silence_action = registry.get("monitoring", "silence_alert")


def silences_for(stack: MonitoringStack, alertname: str) -> list[dict[str, Any]]:
    found = httpx.get(f"{stack.alertmanager.url}/api/v2/silences").json()
    return [
        s for s in found if any(m["name"] == "alertname" and m["value"] == alertname for m in s["matchers"])
    ]


def active(silences: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in silences if s["status"]["state"] == "active"]


def test_resolved_when_nothing_fires(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    result = run_action(resolved_action, {"alertname": job, "wait_timeout": None}, ctx=ctx())
    assert result.output["resolved"] is True


def test_firing_alert_fails_after_the_wait(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    fire_alert(services.alertmanager.url, {"alertname": job, "pod": "web-1"})
    started = time.monotonic()
    params = {"alertname": job, "labels": {"pod": "web-1"}, "wait_timeout": "1s"}
    with pytest.raises(
        VerificationFailed, match=r"within 1s: 1 still active: .*'pod': 'web-1'.*active since"
    ):
        run_action(resolved_action, params, ctx=ctx(poll_interval=0.2))
    assert 1.0 <= time.monotonic() - started < 4
    # Other label values do not match.
    other = {"alertname": job, "labels": {"pod": "web-2"}, "wait_timeout": None}
    assert run_action(resolved_action, other, ctx=ctx()).output["resolved"]


def test_waits_until_the_alert_resolves(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    labels = {"alertname": job, "pod": 'we"ird\\name'}  # quotes and backslashes reach the filter escaped
    fire_alert(services.alertmanager.url, labels)
    timer = threading.Timer(1.0, resolve_alert, (services.alertmanager.url, labels))
    timer.start()
    started = time.monotonic()
    params = {"alertname": job, "labels": {"pod": labels["pod"]}, "wait_timeout": "20s"}
    run_action(resolved_action, params, ctx=ctx(poll_interval=0.2))
    timer.join()
    assert time.monotonic() - started >= 1.0


def test_regex_matchers(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    fire_alert(services.alertmanager.url, {"alertname": job, "severity": "critical"})
    params: dict[str, Any] = {"alertname": job, "wait_timeout": None}
    with pytest.raises(VerificationFailed, match="1 still active"):
        run_action(
            resolved_action,
            {**params, "matchers": [{"name": "severity", "op": "=~", "value": "crit.*"}]},
            ctx=ctx(),
        )
    ok = {**params, "matchers": [{"name": "severity", "op": "!=", "value": "critical"}]}
    assert run_action(resolved_action, ok, ctx=ctx()).output["resolved"]


def test_silence_then_undo_twice(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    fire_alert(services.alertmanager.url, {"alertname": job, "namespace": "shop"})
    params = {
        "labels": {"alertname": job, "namespace": "shop"},
        "duration": "10m",
        "comment": "fixing",
        "createdBy": "sre",
    }
    journal = UndoJournal()
    result = run_action(silence_action, params, ctx=ctx(journal=journal))
    assert result.changed and result.undo is not None
    assert (
        journal.records and journal.records[0]["marker"] == result.undo["marker"]
    )  # saved before the change
    [silence] = active(silences_for(services, job))
    assert silence["id"] == result.output["silence_id"] and silence["createdBy"] == "sre"
    assert silence["comment"].startswith("fixing [kubernaut:")
    # The silence really silences the alert, so the alert counts as resolved only when asked to.
    check = {"alertname": job, "wait_timeout": "5s"}
    with pytest.raises(VerificationFailed):
        run_action(resolved_action, {**check, "wait_timeout": None}, ctx=ctx())
    run_action(resolved_action, {**check, "ignore_silenced": True}, ctx=ctx(poll_interval=0.2))

    first, second = assert_undo_idempotent(
        silence_action, params, result, ctx=ctx(), state=lambda: active(silences_for(services, job))
    )
    assert first == {"expired": [silence["id"]], "already_expired": []}
    assert second == {"expired": [], "already_expired": [silence["id"]]}
    assert not active(silences_for(services, job))


def test_retry_after_interruption_does_not_silence_twice(
    services: MonitoringStack, ctx: Ctx, job: str
) -> None:
    params = {"labels": {"alertname": job}, "duration": "5m"}
    journal = UndoJournal()
    first = run_action(silence_action, params, ctx=ctx(journal=journal))
    again = run_action(silence_action, params, ctx=ctx(prior_undo=journal.records[0]))
    assert again.output["already_done"] and again.output["silence_id"] == first.output["silence_id"]
    assert again.undo == first.undo
    assert len(active(silences_for(services, job))) == 1


def test_interrupted_before_the_silence_existed(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    # The journal holds a record but the POST never happened: the retry creates it, keeping the marker.
    params = {"labels": {"alertname": job}, "duration": "5m"}
    journal = UndoJournal()
    run_action(silence_action, params, ctx=ctx(journal=journal))
    record = journal.records[0]
    run_undo(silence_action, params, record, ctx=ctx())  # no silence_id: found by its marker
    assert not active(silences_for(services, job))
    retry = run_action(silence_action, params, ctx=ctx(prior_undo=record))
    assert "already_done" not in retry.output and retry.undo and retry.undo["marker"] == record["marker"]
    assert [s["id"] for s in active(silences_for(services, job))] == [retry.output["silence_id"]]


def test_silence_dry_run_creates_nothing(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    journal = UndoJournal()
    result = run_action(
        silence_action, {"labels": {"alertname": job}}, ctx=ctx(dry_run=True, journal=journal)
    )
    assert result.output["dry_run"] and result.output["silence_id"] is None and not result.changed
    assert result.undo is None and not journal.records and not silences_for(services, job)


def test_silence_refuses_unbounded_or_match_all_silences() -> None:
    with pytest.raises(ParamsInvalid, match="at least one positive matcher"):
        run_action(silence_action, {"matchers": [{"name": "severity", "op": "!=", "value": "info"}]})
    with pytest.raises(ParamsInvalid, match="at least one positive matcher"):
        run_action(silence_action, {"labels": {"alertname": ""}})
    with pytest.raises(ParamsInvalid, match="duration must be between"):
        run_action(silence_action, {"labels": {"alertname": "x"}, "duration": "30d"})
    with pytest.raises(ParamsInvalid, match="labels"):
        run_action(silence_action, {"labels": {"bad-name": "x"}})
