"""Already resolved: a run launched for an alert asks Alertmanager, right before its first
change, whether that alert still fires; if not, the run ends early without changing anything,
outcome ``not_needed`` (green).

The design is the smallest that holds (no extra task, nothing waits): the step operator calls
``not_needed`` before it runs a step.

* A step whose action may change something (``mutating``, or an action that decides per call,
  such as ``http_request``), in a run that has journaled no change yet, whose ``conf.alert`` is
  an Alertmanager alert (it has a ``fingerprint``, as every alert the intake launches for),
  not a dry run and not ``conf.resolved_check: false``: one ``GET /api/v2/alerts``
  with the alert's labels as matchers (active, silenced and inhibited included: a silenced
  alert still fires). Empty: the alert is resolved; the outcome ``resolved_check:
  not_needed`` is recorded in the history and the step is skipped.
* Every later step of that run (read-only ones too) sees the recorded outcome and is skipped.
* ``finalize`` records the run as ``not_needed`` and leaves it green.

Alertmanager unreachable or not configured (``alertmanager_conn_id``): the check cannot tell,
so the run goes on as before (logged): the remediation is what the alert asked for, and its
own pre-checks still guard every change. ``blocking.resolved_check: false`` turns it off.
A manual run (game day, rehearsal) opts out with ``{"resolved_check": false}`` in its conf
(alerts cannot set it: the intake's conf is ``{"alert": ...}``).
"""

from __future__ import annotations

from typing import Any

from kubernaut.operators.run_context import RunContext
from kubernaut.operators.runner import StepSpec

KIND, NOT_NEEDED = "resolved_check", "not_needed"
CHECK_TIMEOUT = 5.0


def _may_change(spec: StepSpec) -> bool:
    from kubernaut.actions.base import Action
    from kubernaut.actions.registry import registry

    try:
        action = registry.get(spec.action_type, spec.action_name)
    except Exception:
        return False  # the step itself reports an unknown action
    return bool(action.mutating) or action.is_mutating is not Action.is_mutating


def recorded(run: RunContext) -> dict[str, Any] | None:
    """The run's ``not_needed`` outcome, if an earlier step recorded one (read with the run row
    by ``RunContext.open``: no second round trip)."""
    if run.history is None or run.run_id is None:
        return None
    if run.resolved_read:
        return run.resolved
    return run.history.outcome_of_kind(run.run_id, KIND, NOT_NEEDED)


def not_needed(run: RunContext, spec: StepSpec, log: Any) -> str | None:
    """Why this step must not run (the run's alert is resolved), or None to run it."""
    done = recorded(run)
    if done is not None:
        return f"run not needed: {done['detail'].get('reason', 'its alert resolved')}"
    if run.history is None or run.run_id is None or not run.config.blocking.resolved_check:
        return None
    if spec.dry_run or run.conf.get("dry_run") or run.conf.get("resolved_check") is False:
        return None
    alert = run.conf.get("alert")
    if not isinstance(alert, dict) or not alert.get("fingerprint") or alert.get("status") == "resolved":
        return None
    labels = alert.get("labels")
    if not isinstance(labels, dict) or not labels.get("alertname") or not _may_change(spec):
        return None
    if run.history.journal(run.run_id):
        return None  # a change was made already: too late to stop, the run finishes its work
    from kubernaut.services.alertmanager import AlertmanagerClient, matchers_from

    try:
        matchers = matchers_from({str(k): str(v) for k, v in labels.items()})
        client = AlertmanagerClient.from_connection(run.config.alertmanager_conn_id, timeout=CHECK_TIMEOUT)
        try:
            firing = client.alerts(matchers)
        finally:
            client.close()
    except Exception as exc:  # cannot tell: go on, as without the check
        log.warning(
            "kubernaut: %s: could not ask Alertmanager whether the alert still fires: %s", spec.name, exc
        )
        return None
    if firing:
        return None
    reason = (
        f"alert {labels['alertname']} ({', '.join(m.to_filter() for m in matchers)}) no longer fires in "
        f"Alertmanager ({run.config.alertmanager_conn_id}) before the run's first change (step {spec.name}): "
        "nothing changed"
    )
    run.history.record_outcome(run.run_id, KIND, NOT_NEEDED, {"reason": reason, "step": spec.name})
    return reason
