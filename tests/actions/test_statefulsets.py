"""StatefulSet and DaemonSet actions against the sandbox over HTTP: a bad rollout (a template
whose pods crash) rolled back through ControllerRevisions, as `kubectl rollout undo` does; dry
run, undo (twice), a retried step, refusals; and the StatefulSet restart."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubernaut.actions import ActionContext, PreconditionFailed, VerificationFailed
from kubernaut.sandbox import SandboxCluster
from kubernaut.sandbox.batch import FAULT_ANNOTATION
from tests.actions.conftest import ConflictOnce, bump_annotation, policy_ctx
from tests.actions.k8s_helpers import must_get, pods_of, ready, retry_ctx, run, wait_all_ready, workload


@pytest.fixture
def ctx(cluster: SandboxCluster) -> ActionContext:
    """As the shared one, with more time: a step's timeout runs from here, and these tests
    settle workloads first (slow on a loaded machine)."""
    import logging

    from kubernaut.config import KubernautConfig

    return ActionContext(
        timeout=90, poll_interval=0.1, logger=logging.getLogger("test"), _config=KubernautConfig()
    )


def crashing(pod: dict[str, Any]) -> bool:
    return any(
        (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
        for s in pod.get("status", {}).get("containerStatuses", [])
    )


def bad_rollout(cluster: SandboxCluster, kind: str, name: str) -> dict[str, Any]:
    """A new image whose pods crash (the sandbox's fault marker in the pod template); returns
    the template before."""
    obj = must_get(cluster, kind, "demo", name)
    good = copy.deepcopy(obj["spec"]["template"])
    obj["spec"]["template"]["spec"]["containers"][1]["image"] = "nginx:1.28-broken"
    obj["spec"]["template"].setdefault("metadata", {}).setdefault("annotations", {})[FAULT_ANNOTATION] = (
        "crashloop"
    )
    cluster.apply(obj)
    cluster.wait_until(lambda: any(map(crashing, pods_of(cluster, name))), timeout=20)
    return good


def revisions(cluster: SandboxCluster, name: str) -> dict[str, int]:
    return {
        r["metadata"]["name"]: r["revision"]
        for r in cluster.list("controllerrevisions", "demo", labels={"app": name})
    }


def test_rollback_statefulset_fixes_a_stuck_rollout(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext, conflict_once: ConflictOnce
) -> None:
    cluster.apply(workload("StatefulSet", "db", replicas=3))
    wait_all_ready(cluster, "db", 3)
    with pytest.raises(
        PreconditionFailed, match=r"no previous revision to roll back to \(known revisions: \[1\]\)"
    ):
        run(ctx, "rollback_statefulset", namespace="demo", statefulset="db", only_if_stuck=False)
    good = bad_rollout(cluster, "statefulsets", "db")
    sts = must_get(cluster, "statefulsets", "demo", "db")
    bad = sts["spec"]["template"]
    status = sts["status"]
    assert status["currentRevision"] != status["updateRevision"]  # stuck: db-2 crashes
    assert sorted(revisions(cluster, "db").values()) == [1, 2]
    first = status["currentRevision"]

    _, _, dry = run(dry_ctx, "rollback_statefulset", namespace="demo", statefulset="db")
    assert not dry.changed and must_get(cluster, "statefulsets", "demo", "db")["spec"]["template"] == bad
    assert any(map(crashing, pods_of(cluster, "db")))

    conflict_once.arm(bump_annotation(cluster, "statefulsets", "demo", "db"))
    action, params, result = run(ctx, "rollback_statefulset", namespace="demo", statefulset="db")
    assert conflict_once.retried()  # the first write hit the 409 and was retried
    assert result.changed and result.undo["template"] == bad
    assert result.output["to_revision"] == 1 and result.output["to_revision_name"] == first
    assert result.output["deleted_pods"] == ["db-2"]  # the stuck pod (forced rollback)
    after = must_get(cluster, "statefulsets", "demo", "db")
    assert after["spec"]["template"] == good
    assert after["status"]["currentRevision"] == after["status"]["updateRevision"] == first
    assert revisions(cluster, "db")[first] == 3  # the old revision reused with the next number
    pods = wait_all_ready(cluster, "db", 3)
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in pods} == {first}
    assert not any(map(crashing, pods))

    # A retried step sees the template differs from its record: no second rollback.
    _, _, again = run(retry_ctx(ctx, result.undo), "rollback_statefulset", namespace="demo", statefulset="db")
    assert again.output["already_done"] is True
    # Now at the previous template, the "previous" revision is the bad one again: kubectl
    # would roll forward; to_revision pins the one to go to, which is already there.
    # A rollout that has completed is left alone (only_if_stuck, the default): going back
    # would undo a good rollout.
    _, _, done = run(ctx, "rollback_statefulset", namespace="demo", statefulset="db")
    assert done.output["reason"] == "rollout complete" and not done.changed and done.undo is None
    _, _, same = run(
        ctx, "rollback_statefulset", namespace="demo", statefulset="db", to_revision=3, only_if_stuck=False
    )
    assert same.output["unchanged"] is True and not same.changed
    with pytest.raises(PreconditionFailed, match=r"no revision 9 \(known revisions: \[2, 3\]\)"):
        run(
            ctx,
            "rollback_statefulset",
            namespace="demo",
            statefulset="db",
            to_revision=9,
            only_if_stuck=False,
        )

    assert action.undo(ctx, params, result.undo)["restored"] is True
    assert must_get(cluster, "statefulsets", "demo", "db")["spec"]["template"] == bad
    assert action.undo(ctx, params, result.undo) == {
        "restored": False,
        "reason": "template already as before",
    }


def test_reverting_the_template_alone_leaves_the_statefulset_stuck(cluster: SandboxCluster) -> None:
    """The sandbox behaves as a real cluster: an OrderedReady rollout stuck on a crashing pod
    goes on only once that pod is deleted, which is why the action deletes it by default."""
    cluster.apply(workload("StatefulSet", "db", replicas=2))
    wait_all_ready(cluster, "db", 2)
    bad_rollout(cluster, "statefulsets", "db")
    short = ActionContext(timeout=1.5, poll_interval=0.1, _config=ctx_config())
    with pytest.raises(VerificationFailed, match="rollout of statefulset demo/db not reached"):
        run(short, "rollback_statefulset", namespace="demo", statefulset="db", delete_stuck_pods=False)
    assert crashing(must_get(cluster, "pods", "demo", "db-1"))


def ctx_config() -> Any:
    from kubernaut.config import KubernautConfig

    return KubernautConfig()


def test_rollback_statefulset_policy_protected_namespace(cluster: SandboxCluster) -> None:
    cluster.apply(workload("StatefulSet", "db", replicas=1, namespace="kube-system"))
    with pytest.raises(PreconditionFailed, match="namespace kube-system is protected"):
        run(policy_ctx(), "rollback_statefulset", namespace="kube-system", statefulset="db")


def test_rollback_daemonset_replaces_the_crashing_pods(
    cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext
) -> None:
    cluster.apply(workload("DaemonSet", "agent"))
    wait_all_ready(cluster, "agent", 2)
    good = bad_rollout(cluster, "daemonsets", "agent")
    bad = must_get(cluster, "daemonsets", "demo", "agent")["spec"]["template"]
    assert sorted(revisions(cluster, "agent").values()) == [1, 2]
    # maxUnavailable 1: one pod replaced by a crashing one, the other old pod stays.
    assert sum(map(ready, pods_of(cluster, "agent"))) == 1

    _, _, dry = run(dry_ctx, "rollback_daemonset", namespace="demo", daemonset="agent")
    assert not dry.changed and must_get(cluster, "daemonsets", "demo", "agent")["spec"]["template"] == bad

    action, params, result = run(ctx, "rollback_daemonset", namespace="demo", daemonset="agent")
    assert result.changed and result.output["to_revision"] == 1
    assert must_get(cluster, "daemonsets", "demo", "agent")["spec"]["template"] == good
    pods = wait_all_ready(cluster, "agent", 2)
    first = result.output["to_revision_name"]
    assert {f"agent-{p['metadata']['labels']['controller-revision-hash']}" for p in pods} == {first}
    assert revisions(cluster, "agent")[first] == 3
    status = must_get(cluster, "daemonsets", "demo", "agent")["status"]
    assert status["updatedNumberScheduled"] == status["numberReady"] == 2

    assert action.undo(ctx, params, result.undo)["restored"] is True
    assert must_get(cluster, "daemonsets", "demo", "agent")["spec"]["template"] == bad
    assert action.undo(ctx, params, result.undo)["restored"] is False


def test_restart_statefulset(cluster: SandboxCluster, ctx: ActionContext, dry_ctx: ActionContext) -> None:
    cluster.apply(workload("StatefulSet", "db", replicas=2))
    old = {p["metadata"]["uid"] for p in wait_all_ready(cluster, "db", 2)}
    _, _, dry = run(dry_ctx, "restart_statefulset", namespace="demo", statefulset="db")
    assert not dry.changed and {p["metadata"]["uid"] for p in pods_of(cluster, "db")} == old

    action, params, result = run(ctx, "restart_statefulset", namespace="demo", statefulset="db")
    assert result.undo == {"restartedAt": None} and result.changed
    new = {p["metadata"]["uid"] for p in wait_all_ready(cluster, "db", 2)}
    assert not new & old  # every pod was replaced, one at a time
    template = must_get(cluster, "statefulsets", "demo", "db")["spec"]["template"]["metadata"]
    assert "kubectl.kubernetes.io/restartedAt" in template["annotations"]
    _, _, again = run(retry_ctx(ctx, result.undo), "restart_statefulset", namespace="demo", statefulset="db")
    assert again.output["already_done"] is True

    assert action.undo(ctx, params, result.undo)["restored"] is True
    template = must_get(cluster, "statefulsets", "demo", "db")["spec"]["template"]["metadata"]
    assert "kubectl.kubernetes.io/restartedAt" not in (template.get("annotations") or {})
    assert action.undo(ctx, params, result.undo)["restored"] is False
