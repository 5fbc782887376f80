"""
Injectable workload faults, so remediation actions have something real to fix.

* ``crashloop`` — the workload's current pods crash repeatedly (CrashLoopBackOff); replacements
  (pod deletion, rollout restart, rollback) are healthy.
* ``oom`` — a container needs more memory than its limit allows, so the kernel kills it
  (``lastState.terminated.reason: OOMKilled``, exit code 137) and it restarts in CrashLoopBackOff.
  ``memory`` is what the container needs (default: just above its limit at injection, so any
  increase suffices); ``container`` picks one container (default: all). Whatever runs with a
  memory limit at or above the need is healthy and whatever runs below it is killed, also
  after a later change of the limit: raising it (a new rollout) fixes the fault, deleting pods
  or scaling out does not. A container without a memory limit is never OOM-killed.
* ``unready`` — the current pods run but never pass readiness; replacements are healthy.
* ``image-pull`` — a rollout of an image that cannot be pulled (a Deployment or StatefulSet): the pod
  template's image (``container``: one container, default all) becomes ``image`` (default: the
  current reference with the tag ``does-not-exist``), so the Deployment controller makes a new
  ReplicaSet whose pods wait in ``ErrImagePull``, then ``ImagePullBackOff`` (phase Pending, never
  Ready) while the old ReplicaSet keeps serving; past ``progressDeadlineSeconds`` the Deployment
  reports ``Progressing=False``, ``ProgressDeadlineExceeded``. Any pod whose container runs that
  image cannot pull it; rolling back to the previous pod template fixes it. On a StatefulSet
  the rolling update replaces the highest ordinal first: that pod waits on the image, never
  becomes Ready, and the update stops there (the others keep serving the old revision).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from kubernaut.sandbox.app_faults import BadConfig, SlowStart
from kubernaut.sandbox.store import now_rfc3339

FAULT_TYPES = ("crashloop", "oom", "unready", "image-pull")
MISSING_TAG = "does-not-exist"
WORKLOAD_KINDS = ("deployment", "statefulset", "daemonset")


def parse_memory(quantity: Any) -> Decimal | None:
    """A Kubernetes memory quantity (`128Mi`, `1G`, `1e9`) in bytes; None if absent.
    Raises ValueError for text that is not a quantity."""
    if quantity is None:
        return None
    return Decimal(parse_quantity(quantity))


def memory_limit(container: dict[str, Any]) -> Decimal | None:
    """The container's memory limit in bytes; None if it has none (the API rejects bad text)."""
    try:
        return parse_memory(((container.get("resources") or {}).get("limits") or {}).get("memory"))
    except ValueError:
        return None


@dataclass
class Fault:
    type: str
    namespace: str
    workload: str
    kind: str = "deployment"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    created: str = field(default_factory=now_rfc3339)
    pod_uids: set[str] | None = None  # captured on the first reconciliation that sees the pods
    # oom: bytes each affected container needs, by container name; given as `memory` (text kept)
    needs: dict[str, Decimal] = field(default_factory=dict)
    memory: str | None = None
    container: str | None = None
    # image-pull: the image references no registry serves, by container name
    images: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "namespace": self.namespace,
            "kind": self.kind,
            self.kind: self.workload,
            "created": self.created,
            "pods": sorted(self.pod_uids) if self.pod_uids is not None else None,
        }
        if self.type == "oom":
            data["needs"] = {name: f"{int(need)}" for name, need in sorted(self.needs.items())}
            data["memory"], data["container"] = self.memory, self.container
        if self.type == "image-pull":
            data["images"], data["container"] = dict(sorted(self.images.items())), self.container
        return data

    def unpullable(self, pod: dict[str, Any]) -> set[str]:
        """Names of the pod's containers whose image cannot be pulled (image-pull)."""
        if self.type != "image-pull":
            return set()
        bad = set(self.images.values())
        return {c["name"] for c in pod.get("spec", {}).get("containers", []) if c.get("image") in bad}

    def failing_containers(self, pod: dict[str, Any]) -> set[str]:
        """Names of the pod's containers this fault makes crash (none: the pod is not affected)."""
        containers = pod.get("spec", {}).get("containers", [])
        if self.type == "oom":
            failing = set()
            for container in containers:
                need, limit = self.needs.get(container["name"]), memory_limit(container)
                if need is not None and limit is not None and limit < need:
                    failing.add(container["name"])
            return failing
        if self.type == "crashloop" and self.affects(pod):
            return {c["name"] for c in containers}
        return set()

    def affects(self, pod: dict[str, Any]) -> bool:
        if self.type == "image-pull":
            return bool(self.unpullable(pod))
        if self.type == "oom":
            return bool(self.failing_containers(pod))
        return self.pod_uids is not None and pod["metadata"]["uid"] in self.pod_uids


def oom_needs(
    what: str, containers: list[dict[str, Any]], memory: str | None, container: str | None
) -> dict[str, Decimal]:
    """What each affected container needs: ``memory`` if given (whatever its limit is now: a
    later, lower limit makes it run out), else one byte above its current limit."""
    names = [c["name"] for c in containers]
    if container is not None and container not in names:
        raise ValueError(f"{what} has no container {container!r} (containers: {', '.join(names)})")
    try:
        need = parse_memory(memory)
    except ValueError as exc:
        raise ValueError(f"memory {memory!r} is not a Kubernetes quantity") from exc
    if need is not None and need <= 0:
        raise ValueError(f"memory {memory!r} must be more than 0")
    needs: dict[str, Decimal] = {}
    for item in containers:
        if container is not None and item["name"] != container:
            continue
        limit = memory_limit(item)
        if need is not None:
            needs[item["name"]] = need
        elif limit is not None:
            needs[item["name"]] = limit + 1
    if not needs:
        raise ValueError(
            f"an oom fault on {what} needs `memory` (what the container needs): no container "
            f"{'named ' + repr(container) + ' ' if container else ''}has a memory limit to exceed"
        )
    return needs


def missing_images(
    what: str, containers: list[dict[str, Any]], image: str | None, container: str | None
) -> dict[str, str]:
    """The image each affected container is rolled out with: ``image``, else its current
    reference with the tag ``does-not-exist`` (a digest reference loses its digest)."""
    names = [c["name"] for c in containers]
    if container is not None and container not in names:
        raise ValueError(f"{what} has no container {container!r} (containers: {', '.join(names)})")
    images: dict[str, str] = {}
    for item in containers:
        if container is not None and item["name"] != container:
            continue
        current = str(item.get("image") or "")
        if image:
            bad = image
        else:
            repo = current.split("@", 1)[0]
            if ":" in repo.rsplit("/", 1)[-1]:
                repo = repo.rsplit(":", 1)[0]
            bad = f"{repo}:{MISSING_TAG}"
        if bad == current:
            raise ValueError(f"{what}: container {item['name']!r} already runs {bad!r}; give another `image`")
        images[item["name"]] = bad
    return images


class FaultBook:
    def __init__(self) -> None:
        self.faults: list[Fault] = []
        # rules of the application itself (sandbox/app_faults.py): refused config values and
        # start-up times a liveness probe must allow for
        self.bad_configs: list[BadConfig] = []
        self.slow_starts: list[SlowStart] = []

    def inject(
        self,
        type_: str,
        namespace: str,
        workload: str,
        kind: str = "deployment",
        *,
        containers: list[dict[str, Any]] | None = None,
        memory: str | None = None,
        container: str | None = None,
        image: str | None = None,
    ) -> Fault:
        """``containers``: the workload's pod-template containers (the oom and image-pull
        faults need them); the caller rolls an image-pull fault's ``images`` out."""
        if type_ not in FAULT_TYPES:
            raise ValueError(f"Unknown fault type {type_!r}; expected one of {FAULT_TYPES}")
        if kind not in WORKLOAD_KINDS:
            raise ValueError(f"Unknown workload kind {kind!r}; expected one of {WORKLOAD_KINDS}")
        if type_ not in ("oom", "image-pull") and (memory is not None or container is not None):
            raise ValueError(f"`memory` and `container` apply to the oom fault only, not {type_!r}")
        if type_ != "oom" and memory is not None:
            raise ValueError(f"`memory` applies to the oom fault only, not {type_!r}")
        if type_ != "image-pull" and image is not None:
            raise ValueError(f"`image` applies to the image-pull fault only, not {type_!r}")
        if type_ == "image-pull" and kind not in ("deployment", "statefulset"):
            raise ValueError("the image-pull fault rolls out a Deployment or StatefulSet; give one")
        fault = Fault(type_, namespace, workload, kind, memory=memory, container=container)
        if type_ == "image-pull":
            fault.images = missing_images(
                f"{kind} {namespace}/{workload}", containers or [], image, container
            )
        if type_ == "oom":
            fault.needs = oom_needs(f"{kind} {namespace}/{workload}", containers or [], memory, container)
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.faults.clear()
        self.bad_configs.clear()
        self.slow_starts.clear()

    def for_workload(self, kind: str, namespace: str, workload: str) -> list[Fault]:
        return [f for f in self.faults if (f.kind, f.namespace, f.workload) == (kind, namespace, workload)]

    def effect(self, pod: dict[str, Any], workload: tuple[str, str] | None) -> str | None:
        """Which fault (type) the pod suffers from, given its owning workload (kind, name)."""
        if workload is None:
            return None
        for fault in self.for_workload(workload[0], pod["metadata"]["namespace"], workload[1]):
            if fault.affects(pod):
                return fault.type
        return None

    def unpullable(self, pod: dict[str, Any]) -> set[str]:
        """Containers of the pod whose image no registry serves (any pod running that image)."""
        found: set[str] = set()
        for fault in self.faults:
            if fault.namespace == pod["metadata"].get("namespace"):
                found |= fault.unpullable(pod)
        return found

    def failing_containers(self, pod: dict[str, Any], workload: tuple[str, str] | None) -> set[str]:
        """Containers of the pod that crash (crashloop: all of an affected pod; oom: those whose
        memory limit is below their need)."""
        if workload is None:
            return set()
        failing: set[str] = set()
        for fault in self.for_workload(workload[0], pod["metadata"]["namespace"], workload[1]):
            failing |= fault.failing_containers(pod)
        return failing
