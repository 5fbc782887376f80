"""Jobs and CronJobs in the sandbox: the API server's Job defaulting and validation, and the
Job controller's pods, failures and conditions.

On create (as ``pkg/registry/batch/job/strategy.go``): without ``spec.manualSelector`` the
selector is generated (``batch.kubernetes.io/controller-uid: <uid>``) and the pod template gets
the ``controller-uid``/``job-name`` labels (legacy and ``batch.kubernetes.io/`` ones); a template
that already carries them with another Job's uid or name, or a selector that does not select the
new uid, is refused with 422, as the real API does (so a Job created again from a recorded
manifest must leave those out).

Controller: pods up to ``parallelism`` until ``completions`` succeed (``Complete``); a pod that
fails counts towards ``backoffLimit`` (with ``restartPolicy: OnFailure`` its container restarts
count), and one more than the limit fails the Job (``FailureTarget`` + ``Failed``, reason
``BackoffLimitExceeded``, its active pods deleted); so does ``activeDeadlineSeconds``
(``DeadlineExceeded``). ``spec.suspend`` deletes the active pods (``Suspended``). Retries are
not delayed by the real controller's exponential backoff (10 s, 20 s, ...): the sandbox is fast.
CronJob controller: at the most recent scheduled time (``spec.schedule``, UTC) since
``status.lastScheduleTime`` (else its creation), and no earlier than ``startingDeadlineSeconds``
ago, it creates the Job ``<cronjob>-<minutes since the epoch>`` from ``jobTemplate`` (owned by
the CronJob, annotated ``batch.kubernetes.io/cronjob-scheduled-timestamp``) unless suspended;
``concurrencyPolicy`` Forbid skips while a Job runs and Replace deletes the running one; more
than 100 missed times is an error (``TooManyMissedTimes``), as in the real controller; finished
Jobs beyond ``successfulJobsHistoryLimit``/``failedJobsHistoryLimit`` are deleted. A CronJob
created with a past ``status.lastScheduleTime`` thus starts its missed run at once.

Fault marker (sandbox only): a pod whose annotations, or whose owning Job's annotations, carry
``sandbox.kubernaut.io/fault: crashloop`` crashes like a pod under the ``crashloop`` fault: in a
pod template it marks a bad revision (a rollback to an earlier template fixes it); on a Job's own
metadata it marks that run only (a rerun from the Job's spec succeeds).
"""

from __future__ import annotations

import copy
import datetime
from typing import TYPE_CHECKING, Any

from kubernaut.sandbox import errors
from kubernaut.sandbox.defaults import default_pod_spec
from kubernaut.sandbox.disruption import is_pod_ready
from kubernaut.sandbox.resources import ResourceSpec, resolve
from kubernaut.sandbox.store import Store, now_rfc3339, random_suffix

if TYPE_CHECKING:
    from kubernaut.sandbox.controller import Controller, PodRuntime

PODS, JOBS, CRONJOBS = resolve("pods"), resolve("jobs"), resolve("cronjobs")
FAULT_ANNOTATION = "sandbox.kubernaut.io/fault"
MARKED_FAULTS = ("crashloop",)

CONTROLLER_UID, LEGACY_CONTROLLER_UID = "batch.kubernetes.io/controller-uid", "controller-uid"
JOB_NAME, LEGACY_JOB_NAME = "batch.kubernetes.io/job-name", "job-name"


# --- admission ------------------------------------------------------------------------------------


def admit(spec: ResourceSpec, obj: dict[str, Any]) -> None:
    """Defaulting and validation of a Job or CronJob being created (uid and name already set)."""
    if spec.plural == "jobs":
        _prepare_job(spec, obj)
    elif spec.plural == "cronjobs":
        _default_cronjob(obj)


def _default_job_spec(job_spec: dict[str, Any]) -> None:
    job_spec.setdefault("parallelism", 1)
    job_spec.setdefault("completions", 1)
    job_spec.setdefault("backoffLimit", 6)
    job_spec.setdefault("completionMode", "NonIndexed")
    job_spec.setdefault("suspend", False)
    template_spec = (job_spec.get("template") or {}).get("spec")
    if isinstance(template_spec, dict):
        default_pod_spec(template_spec)


def _prepare_job(spec: ResourceSpec, job: dict[str, Any]) -> None:
    meta, job_spec = job["metadata"], job.setdefault("spec", {})
    _default_job_spec(job_spec)
    template = job_spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    if not meta.get("labels") and labels:
        meta["labels"] = dict(labels)  # SetDefaults_Job: the Job's labels default to its pods'
    if job_spec.get("manualSelector"):
        return
    uid, name = meta["uid"], meta["name"]
    for key, value in (
        (LEGACY_JOB_NAME, name),
        (JOB_NAME, name),
        (LEGACY_CONTROLLER_UID, uid),
        (CONTROLLER_UID, uid),
    ):
        labels.setdefault(key, value)  # a label already there is checked below, not replaced
    selector = job_spec.setdefault("selector", {})
    selector.setdefault("matchLabels", {}).setdefault(CONTROLLER_UID, uid)
    for key, value in ((LEGACY_CONTROLLER_UID, uid), (LEGACY_JOB_NAME, name)):
        if labels.get(key) != value:
            path = f"spec.template.metadata.labels[{key}]"
            raise errors.invalid(spec, name, path, labels.get(key), f"must be '{value}'")
    match = selector.get("matchLabels") or {}
    if match.get(CONTROLLER_UID) != uid or any(labels.get(k) != v for k, v in match.items()):
        raise errors.invalid(spec, name, "spec.selector", selector, "`selector` not auto-generated")


def _default_cronjob(cronjob: dict[str, Any]) -> None:
    spec = cronjob.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_spec = spec.setdefault("jobTemplate", {}).setdefault("spec", {})
    _default_job_spec(job_spec)
    job_spec.pop("suspend", None)  # a jobTemplate's suspend stays unset unless given


# --- fault marker -----------------------------------------------------------------------------------


def marked_fault(store: Store, pod: dict[str, Any]) -> str | None:
    """The sandbox fault a pod is marked with (its own annotations or its Job's), if any."""
    value = (pod["metadata"].get("annotations") or {}).get(FAULT_ANNOTATION)
    if value is None:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "Job":
                job = store.get(JOBS, pod["metadata"]["namespace"], ref.get("name", ""))
                if job is not None and job["metadata"]["uid"] == ref.get("uid"):
                    value = (job["metadata"].get("annotations") or {}).get(FAULT_ANNOTATION)
    return value if value in MARKED_FAULTS else None


def failed_pod_status(pod: dict[str, Any], runtime: PodRuntime, old: dict[str, Any]) -> dict[str, Any]:
    """A pod with ``restartPolicy: Never`` whose containers exited with an error: Failed."""
    from kubernaut.sandbox.controller import _node_ip, condition

    previous, finished = old.get("conditions"), now_rfc3339()
    statuses = [
        {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": f"docker.io/{c.get('image', '')}",
            "restartCount": 0,
            "ready": False,
            "started": False,
            "state": {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": runtime.started,
                    "finishedAt": finished,
                }
            },
            "lastState": {},
        }
        for c in pod["spec"].get("containers", [])
    ]
    node = pod["spec"].get("nodeName", "")
    return {
        "phase": "Failed",
        "conditions": [
            condition("PodReadyToStartContainers", False, previous=previous),
            condition("Initialized", True, previous=previous),
            condition("Ready", False, "PodFailed", previous=previous),
            condition("ContainersReady", False, "PodFailed", previous=previous),
            condition("PodScheduled", True, previous=previous),
        ],
        "hostIP": _node_ip(node),
        "hostIPs": [{"ip": _node_ip(node)}],
        "startTime": old.get("startTime") or runtime.started,
        "containerStatuses": statuses,
        "qosClass": old.get("qosClass", "BestEffort"),
    }


# --- the Job controller -------------------------------------------------------------------------------

BACKOFF_MESSAGE = "Job has reached the specified backoff limit"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"


def _finished(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _seconds_since(stamp: str) -> float:
    then = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return (datetime.datetime.now(tz=datetime.UTC) - then).total_seconds()


def reconcile_job(ctl: Controller, job: dict[str, Any]) -> None:
    from kubernaut.sandbox.controller import condition

    if job["metadata"].get("deletionTimestamp"):
        return
    status = copy.deepcopy(job.get("status") or {})
    spec = job["spec"]
    pods = ctl._owned(PODS, job)
    active = [
        p
        for p in pods
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        and not p["metadata"].get("deletionTimestamp")
    ]
    if _finished(status):
        for pod in active:  # a finished Job runs nothing
            ctl._delete(PODS, pod)
        return
    conditions: list[dict[str, Any]] = [
        c for c in status.get("conditions") or [] if c.get("type") != "Suspended"
    ]
    old_suspended = next((c for c in status.get("conditions") or [] if c.get("type") == "Suspended"), None)
    if spec.get("suspend"):
        for pod in active:
            ctl._delete(PODS, pod)
        suspended = condition("Suspended", True, "JobSuspended", "Job suspended", status.get("conditions"))
        status.update(conditions=[*conditions, suspended], active=0)
        status.pop("startTime", None)  # the real controller clears it while suspended
        ctl._set_status(JOBS, job, {k: v for k, v in status.items() if v != 0})
        return
    if old_suspended is not None and old_suspended.get("status") == "True":
        conditions.append(
            condition("Suspended", False, "JobResumed", "Job resumed", status.get("conditions"))
        )
    succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
    failed = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")
    template = spec.get("template") or {}
    if (template.get("spec") or {}).get("restartPolicy") == "OnFailure":
        failed += sum(
            int(s.get("restartCount", 0))
            for p in active
            for s in (p.get("status") or {}).get("containerStatuses") or []
        )
    completions, parallelism = int(spec.get("completions", 1)), int(spec.get("parallelism", 1))
    started = status.get("startTime") or now_rfc3339()
    deadline = spec.get("activeDeadlineSeconds")
    reason = message = None
    if failed > int(spec.get("backoffLimit", 6)):
        reason, message = "BackoffLimitExceeded", BACKOFF_MESSAGE
    elif deadline is not None and _seconds_since(started) > int(deadline):
        reason, message = "DeadlineExceeded", DEADLINE_MESSAGE
    if reason is not None and message is not None:
        for pod in active:
            ctl._delete(PODS, pod)
        status.update(
            startTime=started,
            active=0,
            ready=0,
            succeeded=succeeded,
            failed=failed,
            conditions=[
                *conditions,
                condition("FailureTarget", True, reason, message),
                condition("Failed", True, reason, message),
            ],
        )
        ctl.event(job, reason, message, "Warning")
        ctl._set_status(JOBS, job, {k: v for k, v in status.items() if v != 0 or k == "ready"})
        return
    job_name = job["metadata"]["name"]
    for _ in range(min(parallelism, completions - succeeded) - len(active)):
        created = ctl._create_pod(
            job,
            template,
            f"{job_name}-{random_suffix()}",
            {LEGACY_JOB_NAME: job_name, JOB_NAME: job_name, LEGACY_CONTROLLER_UID: job["metadata"]["uid"]},
        )
        if created is None:
            break
        ctl.event(job, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
    status.update(
        startTime=started,
        active=len(active),
        ready=sum(1 for p in active if is_pod_ready(p)),
        succeeded=succeeded,
        failed=failed,
        conditions=conditions,
    )
    if succeeded >= completions:
        status.update(
            active=0,
            ready=0,
            completionTime=now_rfc3339(),
            conditions=[
                *conditions,
                condition(
                    "SuccessCriteriaMet",
                    True,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                ),
                condition(
                    "Complete", True, "CompletionsReached", "Reached expected number of succeeded pods"
                ),
            ],
        )
        ctl.event(job, "Completed", "Job completed")
    if not status.get("conditions"):
        status.pop("conditions", None)
    ctl._set_status(JOBS, job, {k: v for k, v in status.items() if v != 0 or k == "ready"})


# --- the CronJob controller ---------------------------------------------------------------------------

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MAX_MISSED = 100


def _parse_time(stamp: str) -> datetime.datetime:
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def _latest_due(cronjob: dict[str, Any], now: datetime.datetime) -> tuple[datetime.datetime | None, int]:
    """The most recent scheduled time not yet run, and how many were missed."""
    from croniter import croniter

    spec, status = cronjob["spec"], cronjob.get("status") or {}
    earliest = _parse_time(status.get("lastScheduleTime") or cronjob["metadata"]["creationTimestamp"])
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, now - datetime.timedelta(seconds=int(deadline)))
    times = croniter(spec["schedule"], earliest)
    latest, missed = None, 0
    while (at := times.get_next(datetime.datetime)) <= now:
        latest, missed = at, missed + 1
        if missed > MAX_MISSED:
            break
    return latest, missed


def reconcile_cronjob(ctl: Controller, cronjob: dict[str, Any]) -> None:
    from kubernaut.sandbox.controller import owner_ref

    meta, spec = cronjob["metadata"], cronjob["spec"]
    if meta.get("deletionTimestamp"):
        return
    jobs = ctl._owned(JOBS, cronjob)
    running = [j for j in jobs if not _finished(j.get("status") or {})]
    status = copy.deepcopy(cronjob.get("status") or {})
    status["active"] = [
        {
            "kind": "Job",
            "namespace": j["metadata"]["namespace"],
            "name": j["metadata"]["name"],
            "uid": j["metadata"]["uid"],
            "apiVersion": "batch/v1",
        }
        for j in running
    ]
    if not status["active"]:
        status.pop("active")
    for outcome, limit_key in (
        ("Complete", "successfulJobsHistoryLimit"),
        ("Failed", "failedJobsHistoryLimit"),
    ):
        done = sorted(
            (
                j
                for j in jobs
                if any(
                    c.get("type") == outcome and c.get("status") == "True"
                    for c in (j.get("status") or {}).get("conditions") or []
                )
            ),
            key=lambda j: j["metadata"]["creationTimestamp"],
        )
        for old in done[: max(0, len(done) - int(spec.get(limit_key, 3 if outcome == "Complete" else 1)))]:
            ctl._delete(JOBS, old)
    try:
        latest, missed = (
            (None, 0) if spec.get("suspend") else _latest_due(cronjob, datetime.datetime.now(tz=datetime.UTC))
        )
    except (ImportError, ValueError, KeyError):  # no croniter, or a schedule it cannot read
        latest, missed = None, 0
    if missed > MAX_MISSED:
        ctl.event(
            cronjob,
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
            "Warning",
        )
        latest = None
    if latest is not None:
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and running:
            latest = None  # skipped: a Job still runs
        elif policy == "Replace":
            for job in running:
                ctl._delete(JOBS, job)
                ctl.event(cronjob, "SuccessfulDelete", f"Deleted job {job['metadata']['name']}")
    if latest is not None:
        name = f"{meta['name']}-{int(latest.timestamp()) // 60}"
        if ctl.store.get(JOBS, meta["namespace"], name) is None:
            template = copy.deepcopy(spec.get("jobTemplate") or {})
            job_meta = copy.deepcopy(template.get("metadata") or {})
            job_meta.update(name=name, ownerReferences=[owner_ref(cronjob)])
            job_meta.setdefault("annotations", {})[SCHEDULED_TIMESTAMP] = latest.strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            ctl.store.create(
                JOBS, {"metadata": job_meta, "spec": template.get("spec") or {}}, meta["namespace"]
            )
            ctl.event(cronjob, "SuccessfulCreate", f"Created job {name}")
        status["lastScheduleTime"] = latest.strftime("%Y-%m-%dT%H:%M:%SZ")
    ctl._set_status(CRONJOBS, cronjob, status)
