"""Node disk: free space on one node with a bounded Job, as operators do it by hand.

``cleanup_node_disk`` runs a Job pinned to the node (``spec.nodeName``: the scheduler is not
asked, so a cordoned or NotReady-for-scheduling node is reached too; it tolerates the
``node.kubernetes.io/disk-pressure`` taint the kubelet's admission checks) that mounts one
host directory (``hostPath``, type Directory) and runs a fixed command from this module's
catalogue, never text from the alert or the template: the directory must be one of the
configured ``policy.node_cleanup_paths`` (or below one), ``..`` and relative paths refused, and it
is passed as an argument (no shell). The Job is bounded: ``backoffLimit: 0``,
``activeDeadlineSeconds``, ``ttlSecondsAfterFinished``, small resource limits, no service
account token, root with only the file capabilities it needs (no privileged mode).

The step waits (in the triggerer) until the Job has finished; a failed Job fails the step.
There is no undo: deleted files are gone (recorded not_restorable with that reason).
"""

from __future__ import annotations

import hashlib
import posixpath
from typing import Any, Literal

from pydantic import Field, field_validator

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult, PreconditionFailed
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Target

DISK_PRESSURE_TAINT = "node.kubernetes.io/disk-pressure"
NODE_LABEL = "kubernaut.io/cleanup-node"
MOUNT = "/host"
Cleanup = Literal["old-files", "rotated-logs"]


def cleanup_command(cleanup: Cleanup, directory: str, older_than_days: int) -> list[str]:
    """The fixed argv for a cleanup kind (``find`` on one file system, files only)."""
    target = MOUNT + directory
    base = ["find", target, "-xdev", "-type", "f", "-mtime", f"+{older_than_days}"]
    if cleanup == "rotated-logs":  # logrotate's leftovers: name.log.1, name.log.2.gz, name-20240101.gz
        base += ["(", "-name", "*.gz", "-o", "-name", "*.log.[0-9]*", "-o", "-name", "*.old", ")"]
    return [*base, "-print", "-delete"]


class CleanupNodeDiskParams(ActionParams):
    node: ObjectName
    path: str = Field(description="Host directory to clean; must be in policy.node_cleanup_paths (or below)")
    cleanup: Cleanup = Field(
        default="rotated-logs", description="Which fixed command: rotated-logs | old-files"
    )
    older_than_days: int = Field(default=7, ge=1, le=365, description="Only files not modified for this long")
    namespace: NamespaceName = Field(default="kube-system", description="Where the Job runs")
    active_deadline_seconds: int = Field(default=300, ge=10, le=3600)
    ttl_seconds_after_finished: int = Field(default=3600, ge=0, le=7 * 24 * 3600)
    wait_timeout: float = Field(default=600, gt=0)

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/") or "\x00" in value:
            raise ValueError(f"path must be an absolute host directory without '..', got {value!r}")
        normal = posixpath.normpath(value)
        if normal == "/":
            raise ValueError("path must not be the host's root")
        return normal


def allowed(path: str, allow_list: list[str]) -> bool:
    for entry in allow_list:
        root = posixpath.normpath(entry)
        if root != "/" and (path == root or path.startswith(root + "/")):
            return True
    return False


def job_name(params: CleanupNodeDiskParams) -> str:
    digest = hashlib.sha256(f"{params.node}|{params.path}|{params.cleanup}".encode()).hexdigest()[:8]
    return f"kubernaut-disk-cleanup-{digest}-"


def job_manifest(params: CleanupNodeDiskParams, image: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "kubernaut", NODE_LABEL: params.node}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"generateName": job_name(params), "namespace": params.namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": params.active_deadline_seconds,
            "ttlSecondsAfterFinished": params.ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeName": params.node,
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "tolerations": [
                        {"key": DISK_PRESSURE_TAINT, "operator": "Exists", "effect": "NoSchedule"},
                        {
                            "key": "node.kubernetes.io/unschedulable",
                            "operator": "Exists",
                            "effect": "NoSchedule",
                        },
                    ],
                    "containers": [
                        {
                            "name": "cleanup",
                            "image": image,
                            "command": cleanup_command(params.cleanup, params.path, params.older_than_days),
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "16Mi"},
                                "limits": {"cpu": "200m", "memory": "64Mi"},
                            },
                            "securityContext": {
                                "runAsUser": 0,
                                "privileged": False,
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"], "add": ["DAC_OVERRIDE", "FOWNER"]},
                            },
                            "volumeMounts": [{"name": "host-dir", "mountPath": MOUNT + params.path}],
                        }
                    ],
                    "volumes": [{"name": "host-dir", "hostPath": {"path": params.path, "type": "Directory"}}],
                },
            },
        },
    }


@register
class CleanupNodeDisk(Action[CleanupNodeDiskParams]):
    kind = "kubernetes"
    name = "cleanup_node_disk"
    Params = CleanupNodeDiskParams
    mutating = True
    summary = (
        "Free disk space on a node: a bounded Job pinned to it deletes old files in an allow-listed dir."
    )
    changes = (
        "creates a Job on the node (nodeName, hostPath of an allow-listed directory, fixed `find -delete` "
        "command, backoffLimit 0, activeDeadlineSeconds, ttlSecondsAfterFinished); waits until it finished"
    )
    undo_doc = "none: deleted files cannot be restored (recorded not_restorable)"
    dry_run_doc = "`dryRun=All` create of the Job"

    def no_undo_reason(self, params: CleanupNodeDiskParams) -> str:
        return (
            f"cleanup_node_disk deleted files under {params.path} on node {params.node}: "
            "deleted files cannot be restored"
        )

    def targets(self, ctx: ActionContext, params: CleanupNodeDiskParams) -> list[Target]:
        # The Node is what changes; the Job is the tool (it may run in a protected namespace).
        return [
            Target("Node", None, params.node),
            Target("Job", params.namespace, job_name(params), check_labels=False, check_protection=False),
        ]

    def precheck(self, ctx: ActionContext, params: CleanupNodeDiskParams) -> None:
        from kubernaut.kube.objects import read_object

        allow_list = ctx.config.policy.node_cleanup_paths
        if not allowed(params.path, allow_list):
            raise PreconditionFailed(
                f"path {params.path} is not in policy.node_cleanup_paths "
                f"({', '.join(allow_list) or 'none'}): cleanup_node_disk only cleans configured directories"
            )
        read_object(ctx.api_client, "Node", None, params.node)

    def _running(self, ctx: ActionContext, params: CleanupNodeDiskParams) -> str | None:
        """An unfinished cleanup Job of this node, path and kind (a retried step's)."""
        from kubernetes.client import BatchV1Api

        from kubernaut.kube.errors import api_errors

        with api_errors(f"jobs in {params.namespace}"):
            jobs = BatchV1Api(ctx.api_client).list_namespaced_job(
                params.namespace, label_selector=f"{NODE_LABEL}={params.node}"
            )
        for job in jobs.items:
            finished = any(
                c.type in ("Complete", "Failed") and c.status == "True" for c in (job.status.conditions or [])
            )
            if not finished and job.metadata.name.startswith(job_name(params)):
                return str(job.metadata.name)
        return None

    def run(self, ctx: ActionContext, params: CleanupNodeDiskParams) -> ActionResult:
        from kubernetes.client import BatchV1Api

        from kubernaut.kube.clients import dry
        from kubernaut.kube.errors import api_errors

        manifest = job_manifest(params, ctx.config.policy.node_cleanup_image)
        name = self._running(ctx, params) if ctx.prior_undo is not None else None
        reused = name is not None
        if name is None:
            with api_errors(f"cleanup job for node {params.node}"):
                created = BatchV1Api(ctx.api_client).create_namespaced_job(
                    params.namespace, manifest, **dry(ctx)
                )
            name = str(created.metadata.name or job_name(params) + "dryrun")
        command = manifest["spec"]["template"]["spec"]["containers"][0]["command"]
        output = {
            "node": params.node,
            "path": params.path,
            "job": f"{params.namespace}/{name}",
            "command": command,
            "reused_running_job": reused,
            "dry_run": ctx.dry_run,
        }
        wait = ctx.wait(
            "job_finished",
            {"namespace": params.namespace, "job": name},
            what=f"cleanup job {params.namespace}/{name} on node {params.node}",
            within=params.wait_timeout,
        )
        return ActionResult(output=output, undo=ctx.prior_undo, changed=not ctx.dry_run, wait=wait)

    def after_wait(
        self, ctx: ActionContext, params: CleanupNodeDiskParams, result: ActionResult, outcome: Any
    ) -> ActionResult:
        result = super().after_wait(ctx, params, result, outcome)
        result.output = {**result.output, "job_status": outcome.detail}
        return result


__all__ = ["CleanupNodeDisk", "allowed", "cleanup_command", "job_manifest"]
