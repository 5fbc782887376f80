"""The one description of an object in a cluster: what an alert is about (the intake), what a
run is recorded against (the history) and what a step changes (the actions, the policy)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, init=False)
class Target:
    """``namespace`` is "" for cluster-scoped kinds (None is accepted and stored as "");
    ``cluster`` is "" for the default cluster (``kubernaut.clusters``)."""

    kind: str
    namespace: str
    name: str
    cluster: str = ""
    # For the safety policy, on what a step changes. False for objects changed only as a
    # consequence (pods a drain evicts): the opt-in label is checked on the object the step is
    # about only.
    check_labels: bool = True
    # False for such consequences too: kubectl drain evicts kube-system pods as well; the step
    # changes the Node (which is checked) and PodDisruptionBudgets still protect the workloads.
    check_protection: bool = True

    def __init__(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        cluster: str = "",
        check_labels: bool = True,
        check_protection: bool = True,
    ) -> None:
        # frozen: fields are set the way dataclasses set them
        for key, value in (
            ("kind", kind),
            ("namespace", namespace or ""),
            ("name", name),
            ("cluster", cluster),
            ("check_labels", check_labels),
            ("check_protection", check_protection),
        ):
            object.__setattr__(self, key, value)

    def as_dict(self) -> dict[str, str]:
        """kind, namespace, name as strings (what a run's conf and the history record)."""
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name}

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


NO_TARGET = Target("", "", "")

__all__ = ["NO_TARGET", "Target"]
