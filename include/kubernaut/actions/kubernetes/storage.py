"""Storage actions: grow a PersistentVolumeClaim, take a VolumeSnapshot of one."""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionParams,
    ActionResult,
    NotRestorable,
    PreconditionFailed,
)
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Target
from kubernaut.waits.spec import WaitSpec

PVC = "PersistentVolumeClaim"
SNAPSHOT_GROUP, SNAPSHOT_VERSION, SNAPSHOTS = "snapshot.storage.k8s.io", "v1", "volumesnapshots"
SNAPSHOT_CLASSES = "volumesnapshotclasses"
MANAGED_BY = "app.kubernetes.io/managed-by"


def _positive_quantity(value: str) -> str:
    from kubernaut.kube.quantity import parse

    if parse(value) <= 0:
        raise ValueError(f"{value!r} must be a positive quantity, e.g. 20Gi")
    return value


StorageSize = Annotated[
    str, AfterValidator(_positive_quantity), Field(max_length=64, description="e.g. 20Gi")
]


def requested_storage(pvc: dict[str, Any]) -> str | None:
    return (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")


def read_bound_claim(ctx: ActionContext, namespace: str, name: str) -> dict[str, Any]:
    """The claim, refusing one that is not Bound (neither expandable nor snapshottable)."""
    from kubernaut.kube.objects import read_object

    pvc = read_object(ctx.api_client, PVC, namespace, name)
    phase = (pvc.get("status") or {}).get("phase")
    if phase != "Bound":
        raise PreconditionFailed(
            f"persistentvolumeclaim {namespace}/{name} is not Bound (phase: {phase or 'unknown'})"
        )
    return pvc


# --- expand_pvc -------------------------------------------------------------------------------


class ExpandPvcParams(ActionParams):
    namespace: NamespaceName
    pvc: ObjectName
    size: StorageSize = Field(description="New storage request (must be larger than the current one)")


@register
class ExpandPvc(Action[ExpandPvcParams]):
    kind = "kubernetes"
    name = "expand_pvc"
    Params = ExpandPvcParams
    mutating = True
    summary = "Grow a Bound PVC's storage request (its StorageClass must allow volume expansion)."
    changes = (
        "PVC `spec.resources.requests.storage` (merge patch, resourceVersion); only grows; "
        "waits for `status.capacity` or `FileSystemResizePending`"
    )
    undo_doc = "not restorable once grown: PersistentVolumeClaims cannot shrink"
    dry_run_doc = "`dryRun=All` patch"

    def targets(self, ctx: ActionContext, params: ExpandPvcParams) -> list[Target]:
        return [Target(PVC, params.namespace, params.pvc)]

    def precheck(self, ctx: ActionContext, params: ExpandPvcParams) -> None:
        from kubernaut.kube.objects import find_object

        what = f"persistentvolumeclaim {params.namespace}/{params.pvc}"
        pvc = read_bound_claim(ctx, params.namespace, params.pvc)
        class_name = (pvc.get("spec") or {}).get("storageClassName")
        if not class_name:
            raise PreconditionFailed(f"{what} has no StorageClass, so nothing can expand its volume")
        storage_class = find_object(ctx.api_client, "StorageClass", None, class_name)
        if storage_class is None:
            raise PreconditionFailed(f"storageclass {class_name} of {what} not found")
        if storage_class.get("allowVolumeExpansion") is not True:
            raise PreconditionFailed(
                f"storageclass {class_name} of {what} does not allow volume expansion "
                f"(allowVolumeExpansion: {storage_class.get('allowVolumeExpansion', 'unset')})"
            )

    def run(self, ctx: ActionContext, params: ExpandPvcParams) -> ActionResult:
        from kubernaut.kube.clients import MERGE_PATCH, dry
        from kubernaut.kube.errors import retry_on_conflict
        from kubernaut.kube.objects import patch_object, read_object
        from kubernaut.kube.quantity import parse

        wanted = parse(params.size)

        def attempt() -> ActionResult:
            pvc = read_object(ctx.api_client, PVC, params.namespace, params.pvc)
            current = requested_storage(pvc)
            output = {
                "pvc": f"{params.namespace}/{params.pvc}",
                "storage_before": current,
                "storage": params.size,
                "storage_class": pvc["spec"].get("storageClassName"),
                "dry_run": ctx.dry_run,
            }
            grown = parse(current or "0") >= wanted
            prior = ctx.prior_undo
            if prior is not None and grown:  # an interrupted attempt grew it already
                output["storage_before"] = prior["storage"]
                return ActionResult(
                    output={**output, "already_done": True},
                    undo=prior,
                    changed=True,
                    wait=self._wait(ctx, params),
                )
            if grown:
                raise PreconditionFailed(
                    f"persistentvolumeclaim {params.namespace}/{params.pvc} requests {current}: "
                    f"{params.size} is not larger (a claim can only grow)"
                )
            undo = ctx.remember_prior({"storage": current})
            patch = {
                "metadata": {"resourceVersion": pvc["metadata"]["resourceVersion"]},
                "spec": {"resources": {"requests": {"storage": params.size}}},
            }
            patch_object(ctx.api_client, PVC, params.namespace, params.pvc, patch, MERGE_PATCH, dry(ctx))
            return ActionResult(
                output=output, undo=undo, changed=not ctx.dry_run, wait=self._wait(ctx, params)
            )

        return retry_on_conflict(attempt)

    @staticmethod
    def _wait(ctx: ActionContext, params: ExpandPvcParams) -> WaitSpec:
        # Capacity reached, or FileSystemResizePending: the volume grew and its file system
        # grows when a pod (re)mounts it (kubernaut.waits.storage).
        args = {"namespace": params.namespace, "pvc": params.pvc, "size": params.size}
        what = f"expansion of persistentvolumeclaim {params.namespace}/{params.pvc}"
        return ctx.wait("pvc_expanded", args, what=what)

    def undo(self, ctx: ActionContext, params: ExpandPvcParams, record: dict[str, Any]) -> dict[str, Any]:
        from kubernaut.kube.objects import read_object
        from kubernaut.kube.quantity import parse

        pvc = read_object(ctx.api_client, PVC, params.namespace, params.pvc)
        current, before = requested_storage(pvc), record.get("storage")
        if parse(current or "0") <= parse(before or "0"):
            return {"restored": False, "reason": f"the claim still requests {current}: it was not grown"}
        # Kubernetes rejects any decrease of a claim's request: the prior size cannot come back.
        raise NotRestorable(
            f"persistentvolumeclaim {params.namespace}/{params.pvc} now requests {current} "
            f"(was {before}): PersistentVolumeClaims cannot shrink"
        )


# --- create_snapshot --------------------------------------------------------------------------


class CreateSnapshotParams(ActionParams):
    namespace: NamespaceName
    pvc: ObjectName
    snapshot_class: ObjectName | None = Field(
        default=None, description="VolumeSnapshotClass (default: the cluster's default class)"
    )
    name: ObjectName | None = Field(
        default=None, description="Snapshot name (default: derived from the PVC and the run)"
    )


def run_identity() -> str | None:
    """dag/run/task of the Airflow task running this step: the same on every retry of it."""
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
        return f"{context['dag'].dag_id}/{context['run_id']}/{context['task'].task_id}"
    except (ImportError, RuntimeError, KeyError, AttributeError):
        return None  # outside a task (tests, CLI): the undo journal alone keeps the name stable


def derived_name(namespace: str, pvc: str) -> str:
    """`<pvc>-<10 hex>` from the run (random outside Airflow); journaled before the create."""
    seed = run_identity() or secrets.token_hex(16)
    digest = hashlib.sha256(f"{seed}/{namespace}/{pvc}".encode()).hexdigest()[:10]
    return f"{pvc[:242].rstrip('-.')}-{digest}"


def get_snapshot(ctx: ActionContext, namespace: str, name: str) -> dict[str, Any] | None:
    from kubernetes.client.exceptions import ApiException

    from kubernaut.kube.clients import custom
    from kubernaut.kube.errors import api_errors

    try:
        obj: dict[str, Any] = custom(ctx).get_namespaced_custom_object(
            SNAPSHOT_GROUP, SNAPSHOT_VERSION, namespace, SNAPSHOTS, name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        with api_errors(f"volumesnapshot {namespace}/{name}"):
            raise
    return obj


def snapshot_source(snapshot: dict[str, Any]) -> str | None:
    return ((snapshot.get("spec") or {}).get("source") or {}).get("persistentVolumeClaimName")


@register
class CreateSnapshot(Action[CreateSnapshotParams]):
    kind = "kubernetes"
    name = "create_snapshot"
    Params = CreateSnapshotParams
    mutating = True
    summary = "Take a CSI VolumeSnapshot (snapshot.storage.k8s.io/v1) of a PVC; waits until ready to use."
    changes = "creates a VolumeSnapshot of the PVC (one per step, also when retried); waits for `readyToUse`"
    undo_doc = "deletes the snapshot it created (its class's deletionPolicy decides about the content)"
    dry_run_doc = "`dryRun=All` create"

    def targets(self, ctx: ActionContext, params: CreateSnapshotParams) -> list[Target]:
        return [Target(PVC, params.namespace, params.pvc)]

    def precheck(self, ctx: ActionContext, params: CreateSnapshotParams) -> None:
        from kubernetes.client.exceptions import ApiException

        from kubernaut.kube.clients import custom
        from kubernaut.kube.discovery import resource_served
        from kubernaut.kube.errors import api_errors

        if not resource_served(ctx.api_client, SNAPSHOT_GROUP, SNAPSHOT_VERSION, SNAPSHOTS):
            raise PreconditionFailed(
                f"the cluster does not serve {SNAPSHOT_GROUP}/{SNAPSHOT_VERSION} {SNAPSHOTS}: install the "
                "CSI external-snapshotter CRDs and controller to take VolumeSnapshots"
            )
        read_bound_claim(ctx, params.namespace, params.pvc)
        if params.snapshot_class is not None:
            try:
                custom(ctx).get_cluster_custom_object(
                    SNAPSHOT_GROUP, SNAPSHOT_VERSION, SNAPSHOT_CLASSES, params.snapshot_class
                )
            except ApiException as exc:
                if exc.status == 404:
                    raise PreconditionFailed(
                        f"volumesnapshotclass {params.snapshot_class} not found"
                    ) from exc
                with api_errors(f"volumesnapshotclass {params.snapshot_class}"):
                    raise

    def run(self, ctx: ActionContext, params: CreateSnapshotParams) -> ActionResult:
        prior = ctx.prior_undo
        name = (
            str(prior["snapshot"])
            if prior is not None
            else params.name or derived_name(params.namespace, params.pvc)
        )
        fresh = {"snapshot": name, "pvc": params.pvc}
        output = {"snapshot": name, "pvc": params.pvc, "namespace": params.namespace, "dry_run": ctx.dry_run}
        existing = get_snapshot(ctx, params.namespace, name)
        if existing is None:
            undo = ctx.remember_prior(fresh)  # journaled first: a retry reuses this name
            if self._create(ctx, params, name):
                return ActionResult(
                    output=output, undo=undo, changed=not ctx.dry_run, wait=self._wait(ctx, params, name)
                )
            existing = get_snapshot(ctx, params.namespace, name)  # created since our read
        # An existing snapshot is this step's when the journal names it or its name was derived
        # from this run; a snapshot someone else named so is never adopted (nor later deleted).
        if existing is None or snapshot_source(existing) != params.pvc or (prior is None and params.name):
            raise PreconditionFailed(
                f"volumesnapshot {params.namespace}/{name} already exists"
                + (f" (of pvc {snapshot_source(existing)})" if existing else "")
                + "; give another name"
            )
        undo = ctx.remember_prior(fresh)
        return ActionResult(
            output={**output, "already_done": True},
            undo=undo,
            changed=True,
            wait=self._wait(ctx, params, name),
        )

    @staticmethod
    def _create(ctx: ActionContext, params: CreateSnapshotParams, name: str) -> bool:
        """Create the snapshot; False when it exists already (409)."""
        from kubernetes.client.exceptions import ApiException

        from kubernaut.kube.clients import custom, dry
        from kubernaut.kube.errors import api_errors

        spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": params.pvc}}
        if params.snapshot_class is not None:
            spec["volumeSnapshotClassName"] = params.snapshot_class
        body = {
            "apiVersion": f"{SNAPSHOT_GROUP}/{SNAPSHOT_VERSION}",
            "kind": "VolumeSnapshot",
            "metadata": {"name": name, "namespace": params.namespace, "labels": {MANAGED_BY: "kubernaut"}},
            "spec": spec,
        }
        try:
            custom(ctx).create_namespaced_custom_object(
                SNAPSHOT_GROUP, SNAPSHOT_VERSION, params.namespace, SNAPSHOTS, body, **dry(ctx)
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            with api_errors(f"volumesnapshot {params.namespace}/{name}"):
                raise
        return True

    @staticmethod
    def _wait(ctx: ActionContext, params: CreateSnapshotParams, name: str) -> WaitSpec:
        args = {"namespace": params.namespace, "name": name}
        return ctx.wait("snapshot_ready", args, what=f"volumesnapshot {params.namespace}/{name} readyToUse")

    def undo(
        self, ctx: ActionContext, params: CreateSnapshotParams, record: dict[str, Any]
    ) -> dict[str, Any]:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        from kubernaut.kube.clients import custom, dry
        from kubernaut.kube.errors import api_errors

        name = record["snapshot"]
        snapshot = get_snapshot(ctx, params.namespace, name)
        if snapshot is None:
            return {"restored": False, "reason": f"volumesnapshot {name} already gone"}
        labels = snapshot["metadata"].get("labels") or {}
        if snapshot_source(snapshot) != record["pvc"] or labels.get(MANAGED_BY) != "kubernaut":
            return {"restored": False, "reason": f"volumesnapshot {name} is not the one this step created"}
        # The uid precondition deletes exactly the snapshot we read, not a same-named successor.
        body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=snapshot["metadata"]["uid"]))
        try:
            custom(ctx).delete_namespaced_custom_object(
                SNAPSHOT_GROUP, SNAPSHOT_VERSION, params.namespace, SNAPSHOTS, name, body=body, **dry(ctx)
            )
        except ApiException as exc:
            if exc.status == 404:
                return {"restored": False, "reason": f"volumesnapshot {name} already gone"}
            with api_errors(f"volumesnapshot {params.namespace}/{name}"):
                raise
        return {"restored": True, "deleted": name}


__all__ = ["CreateSnapshot", "ExpandPvc"]
