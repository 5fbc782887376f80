"""Testing helpers for kubernaut actions: run an action as the operator would, check its
undo, record webhooks, and start real Prometheus/Alertmanager/Pushgateway processes.

Fixtures: ``pytest_plugins = ["kubernaut.testing.pytest_plugin"]``.
"""

from kubernaut.testing.kit import (
    ParamsInvalid,
    UndoJournal,
    assert_action_contract,
    assert_resumes_without_double_change,
    assert_undo_idempotent,
    make_context,
    run_action,
    run_undo,
    validate_params,
)
from kubernaut.testing.webhook import RecordedRequest, RecordingServer, Reply, recording_server

__all__ = [
    "ParamsInvalid",
    "RecordedRequest",
    "RecordingServer",
    "Reply",
    "UndoJournal",
    "assert_action_contract",
    "assert_resumes_without_double_change",
    "assert_undo_idempotent",
    "make_context",
    "recording_server",
    "run_action",
    "run_undo",
    "validate_params",
]
