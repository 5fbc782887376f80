"""Jobs, CronJobs and ResourceQuota in the sandbox, over HTTP with the typed client: the Job
selector and labels the API generates (and its 422 for another Job's), failure after the
backoff limit, restarts counted for OnFailure, suspend; CronJob defaults; quota admission
(403 with the real message, dry run too) and status.used."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubernaut.sandbox import SandboxCluster
from kubernaut.sandbox.batch import FAULT_ANNOTATION


@pytest.fixture
def batch(api_client: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(api_client)


def job(
    name: str, *, restart: str = "Never", backoff: int = 1, fail: bool = False, **spec: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if fail:
        meta["annotations"] = {FAULT_ANNOTATION: "crashloop"}
    return {
        "metadata": meta,
        "spec": {
            "backoffLimit": backoff,
            "template": {
                "spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "busybox"}]}
            },
            **spec,
        },
    }


def status(cluster: SandboxCluster, name: str) -> dict[str, Any]:
    return dict((cluster.get("jobs", "demo", name) or {}).get("status") or {})


def true_conditions(cluster: SandboxCluster, name: str) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status(cluster, name).get("conditions") or [] if c["status"] == "True"}


def test_job_selector_and_labels_are_generated(cluster: SandboxCluster, batch: client.BatchV1Api) -> None:
    created = batch.create_namespaced_job("demo", job("gen"))
    uid = created.metadata.uid
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    assert created.spec.template.metadata.labels == {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "gen",
        "controller-uid": uid,
        "job-name": "gen",
    }
    assert created.spec.suspend is False and created.spec.completion_mode == "NonIndexed"
    cluster.wait_until(lambda: "Complete" in true_conditions(cluster, "gen"))
    assert status(cluster, "gen")["succeeded"] == 1 and status(cluster, "gen").get("completionTime")

    # Another Job's generated labels and selector: refused as the real API does.
    copied = job("copy")
    copied["spec"]["selector"] = created.spec.selector.to_dict() | {
        "matchLabels": created.spec.selector.match_labels
    }
    copied["spec"]["selector"].pop("match_labels", None)
    copied["spec"]["selector"].pop("match_expressions", None)
    copied["spec"]["template"]["metadata"] = {"labels": dict(created.spec.template.metadata.labels)}
    with pytest.raises(ApiException) as info:
        batch.create_namespaced_job("demo", copied)
    assert info.value.status == 422
    assert f'spec.template.metadata.labels[controller-uid]: Invalid value: \\"{uid}\\"' in info.value.body
    # manualSelector: the selector is the user's.
    manual = job("manual", manualSelector=True, selector={"matchLabels": {"run": "m"}})
    manual["spec"]["template"]["metadata"] = {"labels": {"run": "m"}}
    assert batch.create_namespaced_job("demo", manual).spec.selector.match_labels == {"run": "m"}


def test_job_fails_after_its_backoff_limit(cluster: SandboxCluster, batch: client.BatchV1Api) -> None:
    batch.create_namespaced_job("demo", job("never", backoff=1, fail=True))
    failed = cluster.wait_until(lambda: true_conditions(cluster, "never").get("Failed"), timeout=20)
    assert (
        failed["reason"] == "BackoffLimitExceeded"
        and failed["message"] == "Job has reached the specified backoff limit"
    )
    assert set(true_conditions(cluster, "never")) == {"FailureTarget", "Failed"}
    assert status(cluster, "never")["failed"] == 2 and "active" not in status(cluster, "never")
    pods = cluster.list("pods", "demo", labels={"job-name": "never"})
    assert len(pods) == 2 and {p["status"]["phase"] for p in pods} == {"Failed"}
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "Error" and terminated["exitCode"] == 1

    # OnFailure: the container restarts in place; its restarts count towards the limit.
    batch.create_namespaced_job("demo", job("onfailure", restart="OnFailure", backoff=2, fail=True))
    cluster.wait_until(lambda: "Failed" in true_conditions(cluster, "onfailure"), timeout=20)
    assert (
        len(cluster.list("pods", "demo", labels={"job-name": "onfailure"})) <= 1
    )  # one pod, deleted when failed


def test_job_suspend_and_cronjob_defaults(cluster: SandboxCluster, batch: client.BatchV1Api) -> None:
    batch.create_namespaced_job("demo", job("held", suspend=True))
    suspended = cluster.wait_until(lambda: true_conditions(cluster, "held").get("Suspended"))
    assert suspended["reason"] == "JobSuspended"
    assert not cluster.list("pods", "demo", labels={"job-name": "held"})
    batch.patch_namespaced_job("held", "demo", {"spec": {"suspend": False}})
    cluster.wait_until(lambda: "Complete" in true_conditions(cluster, "held"))

    cron = batch.create_namespaced_cron_job(
        "demo",
        {
            "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 0 1 1 *", "jobTemplate": job("x")},
        },
    )
    assert cron.spec.suspend is False and cron.spec.concurrency_policy == "Allow"
    assert cron.spec.successful_jobs_history_limit == 3 and cron.spec.failed_jobs_history_limit == 1
    assert cron.spec.job_template.spec.template.spec.restart_policy == "Never"


def quota(hard: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "q"}, "spec": {"hard": hard, **spec}}


def pod(name: str, **resources: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "x", "resources": resources}]},
    }


def test_quota_admission_and_status(cluster: SandboxCluster, core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "team"}})
    core.create_namespaced_resource_quota(
        "team", quota({"pods": "2", "requests.memory": "1Gi", "count/configmaps": "1"})
    )
    cluster.wait_until(
        lambda: ((cluster.get("resourcequotas", "team", "q") or {}).get("status") or {}).get("used")
    )
    core.create_namespaced_pod("team", pod("a", requests={"memory": "512Mi"}))
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod("team", pod("b", requests={"memory": "768Mi"}))
    assert info.value.status == 403
    body = json.loads(info.value.body)
    assert body["message"] == (
        'pods "b" is forbidden: exceeded quota: q, requested: requests.memory=768Mi, '
        "used: requests.memory=512Mi, limited: requests.memory=1Gi"
    )
    assert body["reason"] == "Forbidden" and body["details"] == {"name": "b", "kind": "pods"}
    with pytest.raises(ApiException, match=r"must specify requests\.memory for: app"):
        core.create_namespaced_pod("team", pod("c"))
    with pytest.raises(ApiException, match="exceeded quota: q"):  # a dry run is admitted the same way
        core.create_namespaced_pod("team", pod("d", requests={"memory": "1Gi"}), dry_run="All")
    core.create_namespaced_config_map("team", {"metadata": {"name": "one"}})
    with pytest.raises(ApiException, match="requested: count/configmaps=1, used: count/configmaps=1"):
        core.create_namespaced_config_map("team", {"metadata": {"name": "two"}})
    expected = {"pods": "1", "requests.memory": "512Mi", "count/configmaps": "1"}
    got = cluster.wait_until(
        lambda: (
            (s := (cluster.get("resourcequotas", "team", "q") or {}).get("status"))
            and s["used"] == expected
            and s
        )
    )
    assert got["hard"] == {"pods": "2", "requests.memory": "1Gi", "count/configmaps": "1"}
    # Raising the hard limit lets the same pod in.
    core.patch_namespaced_resource_quota("q", "team", {"spec": {"hard": {"requests.memory": "2Gi"}}})
    core.create_namespaced_pod("team", pod("b", requests={"memory": "768Mi"}))
    # A scoped quota is not modelled: it refuses nothing.
    core.create_namespaced_resource_quota(
        "demo", quota({"pods": "0"}, scopes=["BestEffort"]) | {"metadata": {"name": "s"}}
    )
    core.create_namespaced_pod("demo", pod("free"))


def test_cronjob_starts_its_missed_run_and_keeps_history(
    cluster: SandboxCluster, batch: client.BatchV1Api
) -> None:
    """Created with a past lastScheduleTime and a starting deadline, the CronJob controller starts
    the most recent missed run at once, as the real one does; a suspended one starts nothing."""
    template = job("x", fail=True)  # marked in the jobTemplate's metadata: every run fails
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "every", "namespace": "demo"},
        "spec": {
            "schedule": "* * * * *",
            "startingDeadlineSeconds": 120,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {
                "metadata": template["metadata"],
                "spec": {**template["spec"], "backoffLimit": 0},
            },
        },
        "status": {"lastScheduleTime": "2026-01-01T00:00:00Z"},
    }
    cluster.apply(
        {**cron, "metadata": {"name": "held", "namespace": "demo"}, "spec": {**cron["spec"], "suspend": True}}
    )
    cluster.apply(cron)
    owner = cluster.get("cronjobs", "demo", "every")
    assert owner is not None
    created = cluster.wait_until(lambda: cluster.list("jobs", "demo"))
    [run] = [j for j in created if j["metadata"]["name"].startswith("every-")]
    minutes = int(run["metadata"]["name"].rsplit("-", 1)[1])
    assert run["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
    scheduled = run["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    assert scheduled.endswith(":00Z") and minutes > 29_000_000  # <cronjob>-<minutes since the epoch>
    cluster.wait_until(
        lambda: (
            (cluster.get("cronjobs", "demo", "every") or {}).get("status", {}).get("lastScheduleTime")
            == scheduled
        )
    )
    cluster.wait_until(lambda: "Failed" in true_conditions(cluster, run["metadata"]["name"]), timeout=20)
    assert not [j for j in cluster.list("jobs", "demo") if j["metadata"]["name"].startswith("held-")]
    # Without a starting deadline, a lastScheduleTime this old is too many missed runs: none start.
    cluster.apply(
        {
            **cron,
            "metadata": {"name": "stale", "namespace": "demo"},
            "spec": {k: v for k, v in cron["spec"].items() if k != "startingDeadlineSeconds"},
        }
    )
    cluster.wait_until(
        lambda: any(e["reason"] == "TooManyMissedTimes" for e in cluster.list("events", "demo"))
    )
    assert not [j for j in cluster.list("jobs", "demo") if j["metadata"]["name"].startswith("stale-")]
