"""Job and CronJob actions against the sandbox over HTTP: delete a failed Job and create it again
(undo), run a failed Job or a CronJob's jobTemplate again, suspend a CronJob and resume it (undo);
dry run, retried steps, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from kubernaut.actions import ActionContext, PreconditionFailed, VerificationFailed
from kubernaut.sandbox import SandboxCluster
from kubernaut.sandbox.batch import FAULT_ANNOTATION
from tests.actions.conftest import policy_ctx
from tests.actions.k8s_helpers import must_get, retry_ctx, run

GENERATED = {
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
}


@pytest.fixture
def ctx(cluster: SandboxCluster) -> ActionContext:
    """As the shared one, with more time: a step's timeout runs from here, and these tests
    settle workloads first (slow on a loaded machine)."""
    import logging

    from kubernaut.config import KubernautConfig

    return ActionContext(
        timeout=90, poll_interval=0.1, logger=logging.getLogger("test"), _config=KubernautConfig()
    )


def job_manifest(name: str, *, fail: bool, backoff: int = 1) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "demo", "labels": {"app": "report"}}
    if fail:  # this run fails (the sandbox's fault marker on the Job itself); a rerun succeeds
        meta["annotations"] = {FAULT_ANNOTATION: "crashloop"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": backoff,
            "template": {
                "metadata": {"labels": {"app": "report"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "report", "image": "report:1"}]},
            },
        },
    }


def conditions(cluster: SandboxCluster, name: str) -> set[str]:
    job = cluster.get("jobs", "demo", name)
    return {
        c["type"] for c in ((job or {}).get("status") or {}).get("conditions") or [] if c["status"] == "True"
    }


def failed_job(cluster: SandboxCluster, name: str = "report") -> dict[str, Any]:
    cluster.apply(job_manifest(name, fail=True))
    cluster.wait_until(lambda: "Failed" in conditions(cluster, name), timeout=20)
    return must_get(cluster, "jobs", "demo", name)


def test_delete_failed_job_and_undo_creates_it_again(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext
) -> None:
    job = failed_job(cluster)
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded" and job["status"]["failed"] == 2
    uid = job["metadata"]["uid"]
    assert len(cluster.list("pods", "demo", labels={"job-name": "report"})) == 2

    _, _, dry = run(dry_ctx, "delete_job", namespace="demo", job="report")
    assert not dry.changed and must_get(cluster, "jobs", "demo", "report")["metadata"]["uid"] == uid

    action, params, result = run(ctx, "delete_job", namespace="demo", job="report")
    assert result.changed and result.output["reason"] == "BackoffLimitExceeded"
    assert result.undo["uid"] == uid and result.undo["job"]["spec"]["selector"]  # recorded as it was
    assert cluster.get("jobs", "demo", "report") is None
    cluster.wait_until(lambda: not cluster.list("pods", "demo", labels={"job-name": "report"}))  # Background

    # A retried step after the delete deletes nothing more.
    _, _, again = run(retry_ctx(ctx, result.undo), "delete_job", namespace="demo", job="report")
    assert again.output["already_done"] is True

    undone = action.undo(ctx, params, result.undo)
    assert undone["restored"] is True and undone["suspended"] is True
    back = must_get(cluster, "jobs", "demo", "report")
    assert back["metadata"]["uid"] != uid and back["spec"]["suspend"] is True
    labels = back["spec"]["template"]["metadata"]["labels"]
    assert labels["controller-uid"] == back["metadata"]["uid"] != uid  # generated afresh by the API
    assert back["spec"]["selector"]["matchLabels"] == {
        "batch.kubernetes.io/controller-uid": back["metadata"]["uid"]
    }
    assert back["metadata"]["annotations"] == {FAULT_ANNOTATION: "crashloop"}
    assert back["spec"]["template"]["spec"]["containers"] == job["spec"]["template"]["spec"]["containers"]
    cluster.wait_until(lambda: "Suspended" in conditions(cluster, "report"))
    assert not cluster.list("pods", "demo", labels={"job-name": "report"})  # suspended: nothing runs
    assert action.undo(ctx, params, result.undo) == {
        "restored": False,
        "reason": "a job of that name exists again",
    }


def test_a_job_created_again_with_its_old_selector_is_refused(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    """Why the undo strips what the API server generated: the real API refuses it (422)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    job = failed_job(cluster)
    cluster.delete("jobs", "demo", "report")
    job["metadata"] = {"name": "report", "namespace": "demo"}
    job.pop("status")
    with pytest.raises(ApiException) as info:
        client.BatchV1Api(ctx.api_client).create_namespaced_job("demo", job)
    assert info.value.status == 422
    assert "spec.template.metadata.labels[controller-uid]: Invalid value" in str(info.value.body)


def test_delete_job_refuses_a_job_that_did_not_fail(cluster: SandboxCluster, ctx: ActionContext) -> None:
    cluster.apply(job_manifest("ok", fail=False))
    cluster.wait_until(lambda: "Complete" in conditions(cluster, "ok"), timeout=20)
    with pytest.raises(
        PreconditionFailed, match=r"job demo/ok has not failed \(conditions: Complete, SuccessCriteriaMet\)"
    ):
        run(ctx, "delete_job", namespace="demo", job="ok")
    assert cluster.get("jobs", "demo", "ok") is not None
    with pytest.raises(PreconditionFailed, match="job demo/nope not found"):
        run(ctx, "delete_job", namespace="demo", job="nope")
    _, _, result = run(ctx, "delete_job", namespace="demo", job="ok", only_failed=False)
    assert result.changed and cluster.get("jobs", "demo", "ok") is None


def test_rerun_failed_job_runs_a_new_job_and_undo_deletes_it(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext
) -> None:
    failed_job(cluster)
    _, _, dry = run(dry_ctx, "rerun_job", namespace="demo", job="report", name="report-again")
    assert not dry.changed and cluster.get("jobs", "demo", "report-again") is None

    action, params, result = run(ctx, "rerun_job", namespace="demo", job="report", name="report-again")
    assert result.changed and result.undo == {"job": "report-again"} and result.output["from"] == "job/report"
    new = must_get(cluster, "jobs", "demo", "report-again")
    assert "Complete" in conditions(cluster, "report-again")  # the step waited for it
    assert new["metadata"]["labels"] == {"app": "report"}
    assert new["spec"]["template"]["metadata"]["labels"]["job-name"] == "report-again"
    assert new["metadata"]["annotations"] == {"kubernaut.io/rerun-of": "job/report"}
    assert "Failed" in conditions(cluster, "report")  # the failed one is left alone

    # A retried step finds the Job its first attempt created: it is not run twice.
    _, _, again = run(retry_ctx(ctx, result.undo), "rerun_job", namespace="demo", job="report")
    assert again.output == {"job": "report-again", "uid": new["metadata"]["uid"], "already_done": True}
    with pytest.raises(PreconditionFailed, match="job demo/report-again already exists"):
        run(ctx, "rerun_job", namespace="demo", job="report", name="report-again")

    assert action.undo(ctx, params, result.undo) == {"restored": True, "deleted": "demo/report-again"}
    assert cluster.get("jobs", "demo", "report-again") is None
    assert action.undo(ctx, params, result.undo)["restored"] is False
    # A Job of that name someone else made is not the undo's to delete.
    cluster.apply(job_manifest("report-again", fail=False))
    assert action.undo(ctx, params, result.undo) == {
        "restored": False,
        "reason": "job report-again was not created by rerun_job: left alone",
    }
    assert cluster.get("jobs", "demo", "report-again") is not None


def test_rerun_that_fails_again_fails_the_step(cluster: SandboxCluster, ctx: ActionContext) -> None:
    job = job_manifest("broken", fail=False)
    job["spec"]["template"]["metadata"]["annotations"] = {FAULT_ANNOTATION: "crashloop"}  # in its spec
    job["spec"]["backoffLimit"] = 0
    cluster.apply(job)
    cluster.wait_until(lambda: "Failed" in conditions(cluster, "broken"), timeout=20)
    with pytest.raises(VerificationFailed, match="job demo/broken-2 failed: BackoffLimitExceeded"):
        run(ctx, "rerun_job", namespace="demo", job="broken", name="broken-2")


def test_rerun_cronjob_and_suspend_cronjob(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext
) -> None:
    cluster.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "backup", "namespace": "demo"},
            "spec": {
                "schedule": "0 0 1 1 *",
                "jobTemplate": {
                    "metadata": {"labels": {"app": "backup"}},
                    "spec": {
                        "backoffLimit": 0,
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "b", "image": "backup:1"}],
                            }
                        },
                    },
                },
            },
        }
    )
    cron = must_get(cluster, "cronjobs", "demo", "backup")
    assert cron["spec"]["suspend"] is False and cron["spec"]["concurrencyPolicy"] == "Allow"
    _, _, manual = run(ctx, "rerun_job", namespace="demo", cronjob="backup", name="backup-manual")
    created = must_get(cluster, "jobs", "demo", "backup-manual")
    assert created["metadata"]["ownerReferences"][0]["uid"] == cron["metadata"]["uid"]
    assert created["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert created["metadata"]["labels"] == {"app": "backup"} and manual.output["from"] == "cronjob/backup"

    _, _, dry = run(dry_ctx, "suspend_cronjob", namespace="demo", job="backup-manual")
    assert not dry.changed and must_get(cluster, "cronjobs", "demo", "backup")["spec"]["suspend"] is False
    # KubeJobFailed names the Job: the CronJob is found through its controller reference.
    action, params, result = run(ctx, "suspend_cronjob", namespace="demo", job="backup-manual")
    assert result.undo == {"cronjob": "backup", "suspend": False} and result.changed
    assert must_get(cluster, "cronjobs", "demo", "backup")["spec"]["suspend"] is True
    _, _, again = run(ctx, "suspend_cronjob", namespace="demo", cronjob="backup")
    assert again.output["unchanged"] is True and not again.changed

    assert action.undo(ctx, params, result.undo) == {"restored": True, "suspend": False}
    assert must_get(cluster, "cronjobs", "demo", "backup")["spec"]["suspend"] is False
    assert action.undo(ctx, params, result.undo)["restored"] is False

    with pytest.raises(PreconditionFailed, match="job demo/backup-manual-x not found"):
        run(ctx, "suspend_cronjob", namespace="demo", job="backup-manual-x")
    cluster.apply(job_manifest("lone", fail=False))
    with pytest.raises(PreconditionFailed, match="job demo/lone was not created by a CronJob"):
        run(ctx, "suspend_cronjob", namespace="demo", job="lone")
    with pytest.raises(PreconditionFailed, match="namespace kube-system is protected"):
        run(policy_ctx(), "suspend_cronjob", namespace="kube-system", cronjob="backup")
