"""Testing helpers for kubernaut actions: run an action as the operator would, check its
undo, record webhooks, start a sandbox Kubernetes cluster (``kube_sandbox``) and real
Prometheus/Alertmanager/Pushgateway processes.

Fixtures: ``pytest_plugins = ["kubernaut.testing.pytest_plugin"]``.
"""

from kubernaut.history.store import UndoRecordConflict
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
from kubernaut.testing.sandbox import KubeSandbox, kube_sandbox
from kubernaut.testing.webhook import RecordedRequest, RecordingServer, Reply, recording_server

__all__ = [
    "KubeSandbox",
    "ParamsInvalid",
    "RecordedRequest",
    "RecordingServer",
    "Reply",
    "UndoJournal",
    "UndoRecordConflict",
    "assert_action_contract",
    "assert_resumes_without_double_change",
    "assert_undo_idempotent",
    "kube_sandbox",
    "make_context",
    "recording_server",
    "run_action",
    "run_undo",
    "validate_params",
]
