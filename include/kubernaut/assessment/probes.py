"""What the assessment reads, worked out before it waits: the changes to check for drift
(from the run's undo journal), the ``ALERTS`` selector for the alert, and reading a value
out of a live object. Pure: the trigger does the reading."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from kubernaut.alert import KNOWN_ALERT_TARGETS, RESOURCE_LABELS
from kubernaut.secrets import is_sealed

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# A path step is a key, or {"name": ...}: the list item with that name (containers).
PathStep = str | dict[str, str]


def _probe(
    step: str,
    action: str,
    kind: str,
    namespace: str | None,
    name: str,
    path: list[PathStep],
    written: Any,
    prior: Any,
) -> dict[str, Any]:
    where = f"{kind.lower()} {namespace}/{name}" if namespace else f"{kind.lower()} {name}"
    return {
        "step": step,
        "action": action,
        "kind": kind,
        "namespace": namespace,
        "name": name,
        "path": path,
        "what": f"{where} {'.'.join(p if isinstance(p, str) else p['name'] for p in path)}",
        "written": written,
        "prior": prior,
    }


def drift_probe(
    step: str, action: str, params: Mapping[str, Any], prior: Mapping[str, Any], output: Mapping[str, Any]
) -> dict[str, Any] | None:
    """How to tell whether this journaled change is still in place; None for an action whose
    change the assessment does not know how to read back."""
    ns = params.get("namespace")
    if action == "kubernetes/scale_deployment" and "replicas" in prior:
        return _probe(step, action, "Deployment", ns, params["deployment"], ["spec", "replicas"],
                      params.get("replicas"), prior["replicas"])  # fmt: skip
    if action == "kubernetes/scale_statefulset" and "replicas" in prior:
        return _probe(step, action, "StatefulSet", ns, params["statefulset"], ["spec", "replicas"],
                      params.get("replicas"), prior["replicas"])  # fmt: skip
    if action == "kubernetes/rollout_restart_deployment" and output.get("restartedAt"):
        path: list[PathStep] = ["spec", "template", "metadata", "annotations", RESTARTED_AT]
        return _probe(step, action, "Deployment", ns, params["deployment"], path,
                      output["restartedAt"], prior.get("restartedAt"))  # fmt: skip
    if action == "kubernetes/increase_resources" and output.get("resources") is not None:
        container = str(params.get("container", ""))
        path = ["spec", "template", "spec", "containers", {"name": container}, "resources"]
        return _probe(step, action, str(params.get("kind", "Deployment")), ns, params["name"], path,
                      output["resources"], prior.get("resources"))  # fmt: skip
    if action == "kubernetes/cordon_node" and params.get("node"):
        before = output.get("unschedulable_before")
        return _probe(
            step, action, "Node", None, params["node"], ["spec", "unschedulable"], True, bool(before)
        )
    return None


def drift_probes(
    journal: Sequence[Mapping[str, Any]], outputs: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Probes for the journaled changes the run kept (an entry it undid itself is no drift)."""
    probes = []
    for entry in journal:
        if entry.get("undo_status") not in ("pending", None):
            continue
        prior = entry.get("prior_state") or {}
        if not isinstance(prior, Mapping) or is_sealed(prior):
            continue  # sealed (secret) records are never opened for this
        probe = drift_probe(
            str(entry["step"]),
            str(entry["action"]),
            entry.get("parameters") or {},
            prior,
            outputs.get(str(entry["step"])) or {},
        )
        if probe is not None:
            probes.append(probe)
    return probes


def read_path(obj: Mapping[str, Any], path: Sequence[PathStep]) -> Any:
    """The value at ``path`` in a live object (camelCase JSON); None where it is absent."""
    node: Any = obj
    for part in path:
        if isinstance(part, dict):
            node = next(
                (i for i in node or [] if isinstance(i, Mapping) and i.get("name") == part["name"]), None
            )
        elif isinstance(node, Mapping):
            node = node.get(part)
        else:
            return None
        if node is None:
            return None
    return node


def normalise(probe: Mapping[str, Any], live: Any) -> Any:
    """Kubernetes omits false/empty fields: ``unschedulable`` absent is false, resources {}."""
    if probe["path"][-1] == "unschedulable":
        return bool(live)
    if probe["path"][-1] == "resources":
        return live or {}
    return live


def quote(value: str) -> str:
    """A PromQL string literal (label values come from alerts: escaped, never spliced raw)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def target_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels naming the alert and its target: alertname, namespace and the target's label
    (as ``kubernaut.alert.derive_target`` finds it)."""
    chosen = {"alertname": labels.get("alertname", "")}
    if labels.get("namespace"):
        chosen["namespace"] = labels["namespace"]
    known = KNOWN_ALERT_TARGETS.get(labels.get("alertname", ""))
    order = [known] if known and labels.get(known) else [label for label, _ in RESOURCE_LABELS]
    for label in order:
        if labels.get(label):
            chosen[label] = labels[label]
            break
    return chosen


def alerts_selector(labels: Mapping[str, str]) -> str:
    """``ALERTS{alertname=..., alertstate="firing", <target labels>}`` for the alert."""
    chosen = {k: v for k, v in target_labels(labels).items() if LABEL_NAME.match(k)}
    chosen["alertstate"] = "firing"
    return "ALERTS{" + ", ".join(f"{k}={quote(v)}" for k, v in sorted(chosen.items())) + "}"
