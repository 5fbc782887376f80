"""Storage actions (expand_pvc, create_snapshot), the guarded generic patch_resource, the
read-only collect_diagnostics, and the drain exemption of the protected-namespace rule."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from kubernaut.actions import (
    ActionContext,
    ActionError,
    NotRestorable,
    PreconditionFailed,
    registry,
)
from kubernaut.actions.kubernetes import storage
from kubernaut.policy import PolicyViolation
from kubernaut.sandbox import SandboxCluster
from tests.actions.conftest import ConflictOnce, bump_annotation, policy_ctx
from tests.actions.k8s_helpers import must_get, pods_of, ready, retry_ctx, run, wait_all_ready, workload

SNAPSHOT_CRDS = ("snapshot.storage.k8s.io",)
SNAPSHOTS = "volumesnapshots.snapshot.storage.k8s.io"


def storage_class(name: str, expandable: bool | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": "csi.example.com",
    }
    if expandable is not None:
        obj["allowVolumeExpansion"] = expandable
    return obj


def claim(
    cluster: SandboxCluster, name: str, storage_class_name: str = "fast", namespace: str = "demo"
) -> dict[str, Any]:
    """A 1Gi claim, waited for until the sandbox has bound it (or left it Pending)."""
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": storage_class_name,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )
    return cluster.wait_until(
        lambda: (
            (pvc := cluster.get("persistentvolumeclaims", namespace, name))
            and (pvc.get("status") or {}).get("phase")
            and pvc
        )
    )


def requested(cluster: SandboxCluster, name: str, namespace: str = "demo") -> str:
    pvc = must_get(cluster, "persistentvolumeclaims", namespace, name)
    return str(pvc["spec"]["resources"]["requests"]["storage"])


def version(cluster: SandboxCluster, kind: str, namespace: str | None, name: str) -> str:
    return str(must_get(cluster, kind, namespace, name)["metadata"]["resourceVersion"])


def refused_by_policy(rule: str, dry_run: bool, action: str, **params: Any) -> PolicyViolation:
    with pytest.raises(PolicyViolation) as info:
        run(policy_ctx(dry_run), action, **params)
    assert info.value.rule == rule
    return info.value


# --- expand_pvc -------------------------------------------------------------------------------


def test_expand_pvc(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    cluster.apply(storage_class("fast", True))
    claim(cluster, "data")
    with pytest.raises(ActionError, match="persistentvolumeclaim demo/ghost not found"):
        run(ctx, "expand_pvc", namespace="demo", pvc="ghost", size="2Gi")

    _, _, dry = run(dry_ctx, "expand_pvc", namespace="demo", pvc="data", size="2Gi")
    assert not dry.changed and dry.output["dry_run"] and requested(cluster, "data") == "1Gi"

    conflict_once.arm(bump_annotation(cluster, "persistentvolumeclaims", "demo", "data"))
    action, params, result = run(ctx, "expand_pvc", namespace="demo", pvc="data", size="2Gi")
    assert conflict_once.retried()  # 409 once, re-read, written again
    assert result.changed and result.undo == {"storage": "1Gi"}
    pvc = must_get(cluster, "persistentvolumeclaims", "demo", "data")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert pvc["status"]["capacity"]["storage"] == "2Gi"  # verify waited for it

    # A retried step whose earlier attempt grew the claim changes nothing more.
    before = version(cluster, "persistentvolumeclaims", "demo", "data")
    _, _, again = run(retry_ctx(ctx, result.undo), "expand_pvc", namespace="demo", pvc="data", size="2Gi")
    assert again.output["already_done"] and again.undo == {"storage": "1Gi"}
    assert version(cluster, "persistentvolumeclaims", "demo", "data") == before

    for size in ("2Gi", "1500Mi"):  # equal or smaller: a claim only grows
        with pytest.raises(PreconditionFailed, match="is not larger"):
            run(ctx, "expand_pvc", namespace="demo", pvc="data", size=size)
    # A grown claim cannot shrink: the undo says so (not_restorable in the rollback), twice alike.
    for _ in range(2):
        with pytest.raises(NotRestorable, match=r"demo/data now requests 2Gi \(was 1Gi\): .* cannot shrink"):
            action.undo(ctx, params, result.undo)
    assert requested(cluster, "data") == "2Gi"
    # A claim that was never grown (e.g. the step failed before its patch) has nothing to restore.
    assert action.undo(ctx, params, {"storage": "2Gi"}) == {
        "restored": False,
        "reason": "the claim still requests 2Gi: it was not grown",
    }
    assert "cannot shrink" in action.undo_doc
    for bad in ("lots", "0", "-1Gi"):
        with pytest.raises(ValidationError):
            registry.get("kubernetes", "expand_pvc").Params.model_validate(
                {"namespace": "demo", "pvc": "data", "size": bad}
            )


def test_expand_pvc_refuses_without_expandable_storage_class(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    cluster.apply(storage_class("fixed", False))
    cluster.apply(storage_class("plain", None))
    claim(cluster, "a", "fixed")
    claim(cluster, "b", "plain")
    claim(cluster, "c", "missing")
    with pytest.raises(PreconditionFailed, match=r"storageclass fixed .* does not allow volume expansion"):
        run(ctx, "expand_pvc", namespace="demo", pvc="a", size="5Gi")
    with pytest.raises(PreconditionFailed, match=r"allowVolumeExpansion: unset"):
        run(ctx, "expand_pvc", namespace="demo", pvc="b", size="5Gi")
    with pytest.raises(PreconditionFailed, match=r"demo/c is not Bound \(phase: Pending\)"):
        run(ctx, "expand_pvc", namespace="demo", pvc="c", size="5Gi")
    assert [requested(cluster, n) for n in "abc"] == ["1Gi", "1Gi", "1Gi"]


def test_expand_pvc_verified_by_filesystem_resize_pending(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    from kubernaut.sandbox.storage import FS_RESIZE_PENDING

    cluster.apply(storage_class("fast", True))
    pvc = claim(cluster, "data")
    pvc["metadata"]["annotations"] = {FS_RESIZE_PENDING: "true"}
    cluster.apply(pvc)
    _, _, result = run(ctx, "expand_pvc", namespace="demo", pvc="data", size="3Gi")
    status = must_get(cluster, "persistentvolumeclaims", "demo", "data")["status"]
    assert result.changed and status["capacity"]["storage"] == "1Gi"  # the file system waits for a pod
    assert [c["type"] for c in status["conditions"]] == ["FileSystemResizePending"]


@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_expand_pvc_protected_namespace(cluster: SandboxCluster, dry_run: bool) -> None:
    cluster.apply(storage_class("fast", True))
    claim(cluster, "etcd", namespace="kube-system")
    violation = refused_by_policy(
        "protected_namespace", dry_run, "expand_pvc", namespace="kube-system", pvc="etcd", size="9Gi"
    )
    assert violation.record["target"] == "PersistentVolumeClaim/kube-system/etcd"
    assert requested(cluster, "etcd", "kube-system") == "1Gi"


# --- create_snapshot --------------------------------------------------------------------------


def snapshots(cluster: SandboxCluster, namespace: str = "demo") -> list[dict[str, Any]]:
    return cluster.list(SNAPSHOTS, namespace)


def test_create_snapshot_without_the_crd_names_the_missing_api(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext
) -> None:
    cluster.apply(storage_class("fast", True))
    claim(cluster, "data")
    for context in (ctx, dry_ctx):
        with pytest.raises(
            PreconditionFailed, match=r"does not serve snapshot\.storage\.k8s\.io/v1 volumesnapshots"
        ):
            run(context, "create_snapshot", namespace="demo", pvc="data")


@pytest.mark.parametrize("crds", [SNAPSHOT_CRDS], ids=["snapshot-crd"])
def test_create_snapshot(cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext) -> None:
    cluster.apply(storage_class("fast", True))
    claim(cluster, "data")
    cluster.apply(
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": "csi-snap"},
            "driver": "csi.example.com",
            "deletionPolicy": "Delete",
        }
    )
    with pytest.raises(ActionError, match="persistentvolumeclaim demo/ghost not found"):
        run(ctx, "create_snapshot", namespace="demo", pvc="ghost")
    with pytest.raises(PreconditionFailed, match="volumesnapshotclass nope not found"):
        run(ctx, "create_snapshot", namespace="demo", pvc="data", snapshot_class="nope")

    _, _, dry = run(dry_ctx, "create_snapshot", namespace="demo", pvc="data", snapshot_class="csi-snap")
    assert not dry.changed and dry.output["dry_run"] and snapshots(cluster) == []

    action, params, result = run(
        ctx, "create_snapshot", namespace="demo", pvc="data", snapshot_class="csi-snap"
    )
    name = result.output["snapshot"]
    assert result.changed and result.undo == {"snapshot": name, "pvc": "data"} and name.startswith("data-")
    [snap] = snapshots(cluster)
    assert snap["metadata"]["name"] == name and snap["status"]["readyToUse"]  # verify waited
    assert snap["spec"] == {
        "source": {"persistentVolumeClaimName": "data"},
        "volumeSnapshotClassName": "csi-snap",
    }

    # The retried step reuses the journaled name: no second snapshot.
    _, _, again = run(retry_ctx(ctx, result.undo), "create_snapshot", namespace="demo", pvc="data")
    assert again.output["already_done"] and again.undo == result.undo
    assert [s["metadata"]["name"] for s in snapshots(cluster)] == [name]

    assert action.undo(ctx, params, result.undo)["restored"] is True
    assert snapshots(cluster) == []
    assert action.undo(ctx, params, result.undo)["restored"] is False  # twice: harmless

    # Interrupted after journaling but before creating: the retry creates it under that name.
    _, _, resumed = run(
        retry_ctx(ctx, {"snapshot": "data-resumed", "pvc": "data"}),
        "create_snapshot",
        namespace="demo",
        pvc="data",
    )
    assert resumed.changed and [s["metadata"]["name"] for s in snapshots(cluster)] == ["data-resumed"]


@pytest.mark.parametrize("crds", [SNAPSHOT_CRDS], ids=["snapshot-crd"])
def test_create_snapshot_names_are_stable_per_run_and_never_adopt_others(
    cluster: SandboxCluster, ctx: ActionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.apply(storage_class("fast", True))
    claim(cluster, "data")
    claim(cluster, "other")
    monkeypatch.setattr(storage, "run_identity", lambda: "dag/run-1/snapshot")
    first = storage.derived_name("demo", "data")
    assert first == storage.derived_name("demo", "data") != storage.derived_name("demo", "other")
    # Even with the journal lost, the same run's retry finds its own snapshot instead of a second one.
    _, _, one = run(ctx, "create_snapshot", namespace="demo", pvc="data")
    _, _, two = run(ctx, "create_snapshot", namespace="demo", pvc="data")
    assert one.output["snapshot"] == two.output["snapshot"] == first and two.output["already_done"]
    assert len(snapshots(cluster)) == 1

    # A name someone else's snapshot already has is refused, and that snapshot is left alone.
    run(ctx, "create_snapshot", namespace="demo", pvc="other", name="taken")
    with pytest.raises(
        PreconditionFailed, match=r"volumesnapshot demo/taken already exists \(of pvc other\)"
    ):
        run(ctx, "create_snapshot", namespace="demo", pvc="data", name="taken")
    assert (
        must_get(cluster, SNAPSHOTS, "demo", "taken")["spec"]["source"]["persistentVolumeClaimName"]
        == "other"
    )


@pytest.mark.parametrize("crds", [SNAPSHOT_CRDS], ids=["snapshot-crd"])
def test_create_snapshot_race_with_an_earlier_attempt(
    cluster: SandboxCluster, ctx: ActionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The create answers 409 (the interrupted attempt's create landed after our read): adopt it."""
    from kubernetes.client import ApiClient

    cluster.apply(storage_class("fast", True))
    claim(cluster, "data")
    original = ApiClient.call_api
    raced: list[str] = []

    def call_api(self: ApiClient, resource_path: str, method: str, *args: Any, **kwargs: Any) -> Any:
        plural = (kwargs.get("path_params", args[0] if args else None) or {}).get("plural")
        if method == "POST" and plural == "volumesnapshots" and not raced:
            raced.append(kwargs["body"]["metadata"]["name"])
            cluster.apply(kwargs["body"])
        return original(self, resource_path, method, *args, **kwargs)

    monkeypatch.setattr(ApiClient, "call_api", call_api)
    _, _, result = run(
        retry_ctx(ctx, {"snapshot": "data-x", "pvc": "data"}), "create_snapshot", namespace="demo", pvc="data"
    )
    assert raced == ["data-x"] and result.output["already_done"] and len(snapshots(cluster)) == 1


@pytest.mark.parametrize("crds", [SNAPSHOT_CRDS], ids=["snapshot-crd"])
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_create_snapshot_protected_namespace(cluster: SandboxCluster, dry_run: bool) -> None:
    cluster.apply(storage_class("fast", True))
    claim(cluster, "etcd", namespace="kube-system")
    refused_by_policy("protected_namespace", dry_run, "create_snapshot", namespace="kube-system", pvc="etcd")
    assert snapshots(cluster, "kube-system") == []


# --- patch_resource ---------------------------------------------------------------------------


def test_patch_resource_merge(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    before = must_get(cluster, "configmaps", "demo", "web-config")
    patch = {
        "data": {"LOG_LEVEL": "debug", "UPSTREAM": None, "NEW": "1"},
        "metadata": {"labels": {"team": "sre"}},
    }
    args = {
        "kind": "ConfigMap",
        "namespace": "demo",
        "name": "web-config",
        "patch_type": "merge",
        "patch": patch,
    }
    with pytest.raises(ActionError, match="configmap demo/nope not found"):
        run(ctx, "patch_resource", **{**args, "name": "nope"})

    _, _, dry = run(dry_ctx, "patch_resource", **args)
    assert not dry.changed and must_get(cluster, "configmaps", "demo", "web-config") == before
    assert {"path": "/data/LOG_LEVEL", "existed": True, "value": "debug"} in dry.output["after"]

    conflict_once.arm(bump_annotation(cluster, "configmaps", "demo", "web-config"))
    action, params, result = run(ctx, "patch_resource", **args)
    assert conflict_once.retried() and result.changed
    after = must_get(cluster, "configmaps", "demo", "web-config")
    assert after["data"] == {"LOG_LEVEL": "debug", "NEW": "1"} and after["metadata"]["labels"] == {
        "team": "sre"
    }
    assert result.undo == {
        "paths": [
            {"path": "/data/LOG_LEVEL", "existed": True, "value": "info"},
            {"path": "/data/NEW", "existed": False},
            {"path": "/data/UPSTREAM", "existed": True, "value": "http://api:8080"},
            # Below a missing map, the first missing one is recorded: undo removes all it added.
            {"path": "/metadata/labels", "existed": False},
        ]
    }

    rv = version(cluster, "configmaps", "demo", "web-config")
    _, _, again = run(retry_ctx(ctx, result.undo), "patch_resource", **args)
    assert again.output["already_done"] and version(cluster, "configmaps", "demo", "web-config") == rv

    assert action.undo(ctx, params, result.undo)["restored"] is True
    restored = must_get(cluster, "configmaps", "demo", "web-config")
    assert restored["data"] == before["data"] and "labels" not in restored["metadata"]
    # The concurrent writer's annotation is not one of the patched paths: it stays.
    assert restored["metadata"]["annotations"] == {"test/concurrent-writer": "was-here"}
    assert action.undo(ctx, params, result.undo) == {
        "restored": False,
        "reason": "patched paths already as before",
    }


def test_patch_resource_json_patch_and_arrays(cluster: SandboxCluster, ctx: ActionContext) -> None:
    service = must_get(cluster, "services", "demo", "web")
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": service["metadata"]["resourceVersion"]},
        {
            "op": "add",
            "path": "/spec/ports/-",
            "value": {"name": "metrics", "port": 9090, "targetPort": 9090},
        },
        {"op": "add", "path": "/metadata/annotations", "value": {"example.com/owner": "sre"}},
        {"op": "add", "path": "/metadata/annotations/example.com~1tier", "value": "web"},
    ]
    args = {"kind": "Service", "namespace": "demo", "name": "web", "patch_type": "json", "patch": ops}
    action, params, result = run(ctx, "patch_resource", **args)
    patched = must_get(cluster, "services", "demo", "web")
    assert [p["name"] for p in patched["spec"]["ports"]] == ["http", "metrics"]
    assert patched["metadata"]["annotations"] == {"example.com/owner": "sre", "example.com/tier": "web"}
    # An array element is restored as the whole array; a path inside a recorded one is not recorded.
    assert [e["path"] for e in result.undo["paths"]] == ["/metadata/annotations", "/spec/ports"]

    # Appending is not idempotent: the retried step must not append a second time.
    _, _, again = run(retry_ctx(ctx, result.undo), "patch_resource", **args)
    assert again.output["already_done"]
    assert len(must_get(cluster, "services", "demo", "web")["spec"]["ports"]) == 2

    for _ in range(2):
        action.undo(ctx, params, result.undo)
        restored = must_get(cluster, "services", "demo", "web")
        assert restored["spec"] == service["spec"] and "annotations" not in restored["metadata"]

    dep = must_get(cluster, "deployments", "demo", "web")
    image = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.28"}]
    action, params, result = run(
        ctx, "patch_resource", kind="Deployment", namespace="demo", name="web", patch_type="json", patch=image
    )
    assert must_get(cluster, "deployments", "demo", "web")["spec"]["template"]["spec"]["containers"][0][
        "image"
    ] == ("nginx:1.28")
    assert result.undo == {
        "paths": [{"path": "/spec/template/spec/containers/0/image", "existed": True, "value": "nginx:1.27"}]
    }
    action.undo(ctx, params, result.undo)
    assert must_get(cluster, "deployments", "demo", "web")["spec"]["template"] == dep["spec"]["template"]


def containers_of(cluster: SandboxCluster, name: str = "web") -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = must_get(cluster, "deployments", "demo", name)["spec"]["template"][
        "spec"
    ]["containers"]
    return containers


def edit_containers(cluster: SandboxCluster, change: Callable[[list[dict[str, Any]]], None]) -> None:
    """Another writer changes the web deployment's containers."""
    dep = must_get(cluster, "deployments", "demo", "web")
    change(dep["spec"]["template"]["spec"]["containers"])
    cluster.apply(dep)


def test_patch_resource_strategic_container_patch(cluster: SandboxCluster, ctx: ActionContext) -> None:
    """kubectl patch's default: a container is merged by its name, so a one-field patch keeps the
    container's ports and the other containers (a JSON merge patch would replace the list)."""
    edit_containers(cluster, lambda cs: cs.append({"name": "sidecar", "image": "busybox:1.36"}))
    before = containers_of(cluster)
    kubectl_style = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}}
    args = {"kind": "Deployment", "namespace": "demo", "name": "web", "patch": kubectl_style}
    action, params, result = run(ctx, "patch_resource", **args)  # patch_type defaults to strategic
    assert params.patch_type == "strategic"
    after = containers_of(cluster)
    assert [(c["name"], c["image"]) for c in after] == [("web", "nginx:1.28"), ("sidecar", "busybox:1.36")]
    assert (
        after[0]["ports"] == before[0]["ports"] == [{"containerPort": 80, "name": "http", "protocol": "TCP"}]
    )
    segments = ["spec", "template", "spec", "containers", {"name": "web"}, "image"]
    assert result.undo == {
        "paths": [
            {
                "path": "/spec/template/spec/containers/[name=web]/image",
                "existed": True,
                "value": "nginx:1.27",
                "segments": segments,
            }
        ]
    }
    rv = version(cluster, "deployments", "demo", "web")
    _, _, again = run(retry_ctx(ctx, result.undo), "patch_resource", **args)
    assert again.output["already_done"] and version(cluster, "deployments", "demo", "web") == rv

    # Others change the list meanwhile: a new first container (web's index shifts), a new sidecar
    # image. The undo finds web by its name and restores only its image.
    def meanwhile(cs: list[dict[str, Any]]) -> None:
        cs[1]["image"] = "busybox:1.37"
        cs.insert(0, {"name": "log-shipper", "image": "fluent-bit:3"})

    edit_containers(cluster, meanwhile)
    assert action.undo(ctx, params, result.undo) == {
        "restored": True,
        "paths": ["/spec/template/spec/containers/1/image"],
    }
    assert [(c["name"], c["image"]) for c in containers_of(cluster)] == [
        ("log-shipper", "fluent-bit:3"),
        ("web", "nginx:1.27"),
        ("sidecar", "busybox:1.37"),
    ]
    assert action.undo(ctx, params, result.undo) == {
        "restored": False,
        "reason": "patched paths already as before",
    }


def test_patch_resource_strategic_delete_and_add_items_undone(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    edit_containers(cluster, lambda cs: cs.append({"name": "sidecar", "image": "busybox:1.36"}))
    before = must_get(cluster, "deployments", "demo", "web")["spec"]["template"]
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "sidecar", "$patch": "delete"},
                        {"name": "web", "env": [{"name": "MODE", "value": "safe"}]},
                    ]
                }
            }
        }
    }
    action, params, result = run(
        ctx, "patch_resource", kind="Deployment", namespace="demo", name="web", patch=patch
    )
    (web,) = containers_of(cluster)
    assert web["env"] == [{"name": "MODE", "value": "safe"}] and web["ports"][0]["containerPort"] == 80
    paths = {e["path"]: e for e in result.undo["paths"]}
    assert paths["/spec/template/spec/containers/[name=sidecar]"]["index"] == 1
    assert paths["/spec/template/spec/containers/[name=web]/env"] == {
        "path": "/spec/template/spec/containers/[name=web]/env",
        "existed": False,
        "segments": ["spec", "template", "spec", "containers", {"name": "web"}, "env"],
    }
    action.undo(ctx, params, result.undo)
    assert must_get(cluster, "deployments", "demo", "web")["spec"]["template"] == before

    # Items patched in another order than the live one: the server reorders the list as the patch
    # lists them, so the whole list is the prior state.
    swapped = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "sidecar", "image": "busybox:1.37"},
                        {"name": "web", "image": "nginx:1.28"},
                    ]
                }
            }
        }
    }
    action, params, result = run(
        ctx, "patch_resource", kind="Deployment", namespace="demo", name="web", patch=swapped
    )
    assert [c["name"] for c in containers_of(cluster)] == ["sidecar", "web"]
    assert [e["path"] for e in result.undo["paths"]] == ["/spec/template/spec/containers"]
    action.undo(ctx, params, result.undo)
    assert must_get(cluster, "deployments", "demo", "web")["spec"]["template"] == before

    # An item the patch changed and someone then removed cannot get its value back: not_restorable.
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:1.37"}]}}}}
    action, params, result = run(
        ctx, "patch_resource", kind="Deployment", namespace="demo", name="web", patch=patch
    )
    edit_containers(cluster, lambda cs: cs.pop())
    with pytest.raises(
        NotRestorable, match=r"cannot restore /spec/template/spec/containers/\[name=sidecar\]/image"
    ):
        action.undo(ctx, params, result.undo)


@pytest.mark.parametrize(
    ("patch_type", "patch", "message"),
    [
        (
            "strategic",
            {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
            "each item needs its merge key 'name'",
        ),
        ("strategic", {"metadata": {"ownerReferences": [{"uid": "u", "$patch": "delete"}]}}, "never patched"),
        ("strategic", {"metadata": {"$patch": "replace", "name": "x"}}, "is never patched"),
        ("strategic", {"$patch": "replace", "spec": {}}, "whole object"),
        ("strategic", {"spec": {"$bogus": 1}}, "unknown strategic merge directive"),
        ("strategic", {"spec": {"template": {"$patch": "merge"}}}, "replace or delete"),
        ("merge", {"metadata": {"ownerReferences": []}}, "metadata.ownerReferences is never patched"),
        ("merge", {"metadata": {"finalizers": None}}, "metadata.finalizers is never patched"),
        ("merge", {"metadata": None}, "is never patched"),
        ("merge", {"status": {"replicas": 0}}, "status is never patched"),
        ("json", [{"op": "replace", "path": "/metadata/resourceVersion", "value": "1"}], "never patched"),
        ("json", [{"op": "add", "path": "/metadata/ownerReferences/-", "value": {}}], "never patched"),
        ("json", [{"op": "remove", "path": "/metadata/uid"}], "metadata.uid is never patched"),
        ("json", [{"op": "replace", "path": "", "value": {}}], "whole object"),
        ("json", [{"op": "move", "from": "/spec/a", "path": "/spec/b"}], "unsupported json patch operation"),
        ("json", [{"op": "add", "path": "/spec/a"}], "give op, path and"),
        ("json", {"spec": {}}, "list of operations"),
        ("merge", [{"op": "remove", "path": "/spec/a"}], "non-empty object"),
    ],
)
def test_patch_resource_refuses_protected_paths(patch_type: str, patch: Any, message: str) -> None:
    params = {
        "kind": "Deployment",
        "namespace": "demo",
        "name": "web",
        "patch_type": patch_type,
        "patch": patch,
    }
    with pytest.raises(ValidationError, match=message):
        registry.get("kubernetes", "patch_resource").Params.model_validate(params)


def test_patch_resource_allow_list_and_policy(cluster: SandboxCluster) -> None:
    params = registry.get("kubernetes", "patch_resource").Params
    with pytest.raises(ValidationError):
        params.model_validate({"kind": "Secret", "namespace": "demo", "name": "x", "patch": {"data": {}}})
    cluster.apply(workload("Deployment", "coredns", replicas=1, namespace="kube-system"))
    for dry_run in (False, True):
        violation = refused_by_policy(
            "protected_namespace",
            dry_run,
            "patch_resource",
            kind="Deployment",
            namespace="kube-system",
            name="coredns",
            patch={"spec": {"replicas": 3}},
        )
        assert violation.record["target"] == "Deployment/kube-system/coredns"
        # A generic patch cannot get around the replica limit either (default max_replicas: 50).
        refused_by_policy(
            "max_replicas",
            dry_run,
            "patch_resource",
            kind="Deployment",
            namespace="demo",
            name="web",
            patch={"spec": {"replicas": 500}},
        )
        refused_by_policy(
            "max_replicas",
            dry_run,
            "patch_resource",
            kind="HorizontalPodAutoscaler",
            namespace="demo",
            name="web",
            patch_type="json",
            patch=[{"op": "replace", "path": "/spec", "value": {"maxReplicas": 99}}],
        )
    assert must_get(cluster, "deployments", "kube-system", "coredns")["spec"]["replicas"] == 1
    assert must_get(cluster, "deployments", "demo", "web")["spec"]["replicas"] == 3


# --- collect_diagnostics ----------------------------------------------------------------------


def diagnose(ctx: ActionContext, **params: Any) -> dict[str, Any]:
    _, _, result = run(ctx, "collect_diagnostics", **params)
    assert result.undo is None and not result.changed
    output: dict[str, Any] = result.output
    return output


def test_collect_diagnostics_of_workloads_and_pods(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext
) -> None:
    wait_all_ready(cluster, "web", 3)
    out = diagnose(ctx, namespace="demo", kind="Deployment", name="web", tail_lines=2, max_events=1)
    assert out["status"]["complete"] and out["status"]["images"] == {"web": "nginx:1.27"}
    assert len(out["pods"]) == 3 and all(p["ready"] for p in out["pods"])
    assert {log["pod"] for log in out["logs"]} == {p["name"] for p in out["pods"]}
    assert all(len(log["lines"]) == 2 and not log["previous"] for log in out["logs"])
    assert out["logs"][0]["lines"][-1] == "Ready to accept connections"
    assert len(out["events"]) == 1 and out["events_total"] >= 1
    assert out["events"][0]["reason"] == "ScalingReplicaSet"
    assert diagnose(dry_ctx, namespace="demo", kind="Deployment", name="web", max_pods=1)["pods"][0]["ready"]

    cluster.inject_fault("crashloop", namespace="demo", deployment="api")
    cluster.wait_until(
        lambda: all(
            (p.get("status") or {}).get("containerStatuses", [{}])[0].get("restartCount", 0) > 0
            for p in pods_of(cluster, "api")
        ),
        timeout=15,
    )
    out = diagnose(ctx, namespace="demo", kind="Deployment", name="api")
    assert not out["status"]["complete"] and out["status"]["crashing"]
    assert all(p["restarts"] > 0 for p in out["pods"])
    assert any(line for log in out["logs"] for line in log["lines"])

    pod = pods_of(cluster, "api")[0]["metadata"]["name"]
    out = diagnose(ctx, namespace="demo", kind="Pod", name=pod)
    assert [p["name"] for p in out["pods"]] == [pod] and out["status"]["phase"] == "Running"
    assert any(e["reason"] in ("BackOff", "Started", "Scheduled") for e in out["events"])

    with pytest.raises(ActionError, match="deployment demo/ghost not found"):
        diagnose(ctx, namespace="demo", kind="Deployment", name="ghost")
    with pytest.raises(ValidationError, match="needs a namespace"):
        registry.get("kubernetes", "collect_diagnostics").Params.model_validate({"kind": "Pod", "name": "x"})


def test_collect_diagnostics_notes_unstarted_containers_and_nodes(
    cluster: SandboxCluster, ctx: ActionContext
) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "stuck", "namespace": "demo"},
            "spec": {"nodeSelector": {"disk": "none"}, "containers": [{"name": "m", "image": "busybox"}]},
        }
    )
    cluster.wait_until(lambda: must_get(cluster, "pods", "demo", "stuck").get("status"))
    out = diagnose(ctx, namespace="demo", kind="Pod", name="stuck")
    assert out["logs"] == [] and out["notes"] == ["stuck/m: not started (no status yet), no log"]
    assert out["status"]["phase"] == "Pending"

    wait_all_ready(cluster, "web", 3)
    out = diagnose(ctx, kind="Node", name="sandbox-node-1", max_events=3)
    assert out["object"]["namespace"] is None and not out["status"]["unschedulable"]
    assert {"type": "Ready", "status": "True", "reason": "KubeletReady"}.items() <= out["status"][
        "conditions"
    ][0].items()
    assert out["pods"] and all(p["pod"].startswith("demo/") for p in out["pods"])
    assert len(out["events"]) <= 3 and out["logs"] == []


def test_collect_diagnostics_output_is_bounded(
    cluster: SandboxCluster, ctx: ActionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernaut.kube import diagnostics

    wait_all_ready(cluster, "web", 3)
    monkeypatch.setattr(diagnostics, "LOG_BUDGET", 60)  # room for about two log lines
    out = diagnose(ctx, namespace="demo", kind="Deployment", name="web", tail_lines=3)
    assert out["truncated"] and sum(len(line) for log in out["logs"] for line in log["lines"]) <= 60
    assert any("log output limit reached" in note for note in out["notes"])


# --- drain_node and protected namespaces -------------------------------------------------------


def test_drain_evicts_protected_namespace_pods_honouring_pdbs(cluster: SandboxCluster) -> None:
    """kubectl drain evicts kube-system pods too: only the Node is checked for protection, the
    workload's PodDisruptionBudget still holds the eviction back; direct mutations stay refused."""
    cluster.apply(workload("Deployment", "coredns", replicas=1, namespace="kube-system"))
    coredns: Callable[[], list[dict[str, Any]]] = lambda: cluster.list(  # noqa: E731
        "pods", "kube-system", labels={"app": "coredns"}
    )
    # Running: the eviction API lets a Pending pod go whatever its budget says, as the real one does.
    cluster.wait_until(lambda: len(coredns()) == 1 and ready(coredns()[0]))
    pod = coredns()[0]
    node = pod["spec"]["nodeName"]
    cluster.apply(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "coredns"}}},
        }
    )
    name = f"kube-system/{pod['metadata']['name']}"
    _, _, dry = run(policy_ctx(True), "drain_node", node=node)
    assert name in dry.output["blocked_by_pdb"]  # not a policy refusal: the budget speaks

    threading.Timer(1.0, lambda: cluster.delete("poddisruptionbudgets", "kube-system", "coredns")).start()
    _, _, result = run(policy_ctx(), "drain_node", node=node)
    assert (
        name in result.output["evicted"] and must_get(cluster, "nodes", None, node)["spec"]["unschedulable"]
    )

    violation = refused_by_policy(
        "protected_namespace",
        False,
        "scale_deployment",
        namespace="kube-system",
        deployment="coredns",
        replicas=2,
    )
    assert violation.record["target"] == "Deployment/kube-system/coredns"
    refused_by_policy("protected_namespace", False, "delete_pod", namespace="kube-system", pod="anything")
