"""The approval gate of a step (`approval: required`): Airflow's human-in-the-loop operator.

Approve runs the step. Reject skips the step and every later step (they check the gates when
they start); the run ends ``declined`` and, unless the step says ``on_reject: keep``, the
changes made before the gate are rolled back. No answer within ``response_timeout``, or any
other failure of the gate, fails the gate: the run fails and rolls back.

Retries exist only for Airflow's stale-executor-event race (apache/airflow#67287, #72716):
when the answer arrives before the scheduler has processed the executor's "success" for the
process that parked the gate, the scheduler marks the resumed gate failed. The answer is
kept on the task instance's HITL detail, which a task cannot read but the triggerer can: the
retry defers to ``RecordedApprovalTrigger`` and resumes with that answer instead of asking
again; a retry that finds no answer fails for good. A timeout is final, never retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException

REJECT = ApprovalOperator.REJECT
DECISION_KEY = "kubernaut_decision"


class KubernautApprovalOperator(ApprovalOperator):
    """Gate before one step; ``on_reject`` is read by the rollback task."""

    def __init__(self, *, template: str, step: str, on_reject: str = "rollback", **kwargs: Any) -> None:
        # Reject skips the gated step directly; later steps skip themselves (see rejected_gates),
        # while rollback and finalize still run on their own trigger rules.
        super().__init__(ignore_downstream_trigger_rules=False, **kwargs)
        self.template, self.step, self.on_reject = template, step, on_reject

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        if ti.try_number > 1:
            # Never upsert again: that would erase the answer already given. Read it from the
            # triggerer instead; no answer there means the earlier try really failed.
            from airflow.sdk.timezone import utcnow

            from kubernaut.triggers import SETTLE_SECONDS
            from kubernaut.triggers.approval import RecordedApprovalTrigger

            settle = SETTLE_SECONDS
            self.log.info("kubernaut: retry of an approval gate: reading the answer already given")
            self.defer(
                trigger=RecordedApprovalTrigger(
                    settle=settle,
                    ti_id=ti.id,
                    options=self.options,
                    defaults=None,
                    params=self.serialized_params,
                    multiple=self.multiple,
                    timeout_datetime=utcnow() + timedelta(seconds=settle + 10),
                    poke_interval=2.0,
                ),
                method_name="execute_complete",
            )
        return super().execute(context)

    def process_trigger_event_error(self, event: dict[str, Any]) -> None:
        # No answer in time is final: the run fails and rolls back; retrying would ask again.
        if event.get("error_type") == "timeout":
            raise AirflowFailException(
                f"approval of step {self.step!r}: no answer within {self.response_timeout}"
            )
        super().process_trigger_event_error(event)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            # Pushed explicitly: on Reject, ApprovalOperator's skip() raises
            # DownstreamTasksSkipped, so its return value never reaches XCom.
            decision = {
                "chosen_options": list(event.get("chosen_options") or []),
                "responded_by": event.get("responded_by_user"),
                "responded_at": str(event.get("responded_at") or ""),
            }
            context["ti"].xcom_push(key=DECISION_KEY, value=decision)
            self._audit(context, decision)
        return super().execute_complete(context, event)

    def _audit(self, context: Any, decision: dict[str, Any]) -> None:
        """Who answered what, in the remediation history (best effort: XCom is the contract)."""
        from kubernaut.operators.run_context import RunContext

        try:
            run = RunContext.open(context, self.template, dry_run=False)
            if run.history is not None and run.run_id is not None:
                answer = "rejected" if REJECT in decision["chosen_options"] else "approved"
                run.history.record_outcome(run.run_id, "approval", answer, {"step": self.step, **decision})
        except Exception as exc:
            self.log.warning("kubernaut: could not record the approval in the history: %s", exc)


def approval_gates(dag: Any) -> dict[str, KubernautApprovalOperator]:
    return {t.task_id: t for t in dag.tasks if isinstance(t, KubernautApprovalOperator)}


def rejected_gates(context: Any) -> list[str]:
    """The gates of this run a person answered with Reject."""
    gates = approval_gates(context["dag"])
    ti = context["ti"]
    rejected = []
    for task_id in gates:
        answer = ti.xcom_pull(task_ids=task_id, key=DECISION_KEY)
        if isinstance(answer, Mapping) and REJECT in (answer.get("chosen_options") or []):
            rejected.append(task_id)
    return rejected
