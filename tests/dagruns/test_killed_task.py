"""A task process SIGKILLed between writing its undo record and making the change (or
right after the change), then retried: no double change, and the undo is still correct."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from kubernaut.actions.base import ActionContext
from kubernaut.history import History
from kubernaut.operators.recorder import HistoryRecorder
from kubernaut.operators.runner import StepSpec, run_step
from kubernaut.rollback import rollback_run
from kubernaut.sandbox import SandboxCluster

STEP = "restart"
ACTION = "kubernetes/rollout_restart_deployment"
SPEC = StepSpec(
    template="kill-test",
    name=STEP,
    action_type="kubernetes",
    action_name="rollout_restart_deployment",
    parameters={"namespace": "demo", "deployment": "api"},
)

CHILD = textwrap.dedent(
    """
    import logging, os, signal, sys
    from kubernetes import client
    from kubernaut.history import History
    from kubernaut.operators.recorder import HistoryRecorder
    from kubernaut.operators.runner import StepSpec, run_step

    mode, run_id = sys.argv[1], int(sys.argv[2])
    recorder = HistoryRecorder(History(), run_id, "restart", "kubernetes/rollout_restart_deployment", "undo")
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    if mode == "before-change":
        save = recorder.save_undo
        recorder.save_undo = lambda record: (save(record), die())
    else:
        patch = client.AppsV1Api.patch_namespaced_deployment
        client.AppsV1Api.patch_namespaced_deployment = lambda self, *a, **k: (patch(self, *a, **k), die())
    spec = StepSpec(template="kill-test", name="restart", action_type="kubernetes",
                    action_name="rollout_restart_deployment",
                    parameters={"namespace": "demo", "deployment": "api"})
    run_step(spec, conf={}, params={}, steps={}, timeout=30, logger=logging.getLogger(), recorder=recorder)
    print("not killed")
    """
)


def template_annotations(cluster: SandboxCluster) -> dict[str, str]:
    dep = cluster.get("deployments", "demo", "api")
    assert dep is not None
    return dict(dep["spec"]["template"]["metadata"].get("annotations") or {})


def revision(cluster: SandboxCluster) -> str:
    return str(
        cluster.get("deployments", "demo", "api")["metadata"]["annotations"][
            "deployment.kubernetes.io/revision"
        ]
    )


@pytest.mark.parametrize("moment", ["before-change", "after-change"])
def test_killed_then_retried_changes_once_and_undoes(
    moment: str, airflow_db: str, cluster: SandboxCluster
) -> None:
    cluster.wait_until(lambda: len(cluster.list("pods", "demo", labels={"app": "api"})) == 2)
    assert revision(cluster) == "1" and "kubectl.kubernetes.io/restartedAt" not in template_annotations(
        cluster
    )
    history = History()
    run_id = history.ensure_run("kill_test", f"run-{moment}", "kill-test", {"namespace": "demo"}, False)

    child = subprocess.run(
        [sys.executable, "-c", CHILD, moment, str(run_id)], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == -9, child.stdout + child.stderr
    assert history.undo_record(run_id, STEP) == {"restartedAt": None, "generation": 1}
    changed = "kubectl.kubernetes.io/restartedAt" in template_annotations(cluster)
    assert changed is (moment == "after-change")

    # The retry (a new attempt of the same task) finds the journal entry.
    recorder = HistoryRecorder(history, run_id, STEP, ACTION, "undo")
    outcome = run_step(
        SPEC, conf={}, params={}, steps={}, timeout=60, logger=logging.getLogger(), recorder=recorder
    )
    assert outcome.record["undo"] == {"restartedAt": None, "generation": 1}
    assert outcome.record["output"].get("already_done", False) is (moment == "after-change")
    assert revision(cluster) == "2"  # restarted exactly once
    assert history.undo_record(run_id, STEP) == {"restartedAt": None, "generation": 1}

    def make_context() -> Any:
        return ActionContext(timeout=30, poll_interval=0.1)

    report = rollback_run(
        history, run_id, {STEP: {"mode": "undo"}}, make_context, lambda _: {}, logging.getLogger()
    )
    assert [i.status for i in report.items] == ["applied"]
    assert "kubectl.kubernetes.io/restartedAt" not in template_annotations(cluster)
    again = rollback_run(
        history, run_id, {STEP: {"mode": "undo"}}, make_context, lambda _: {}, logging.getLogger()
    )
    assert [(i.status, i.earlier) for i in again.items] == [("applied", True)]
