"""quarantine_pod: take a pod out of its Services (relabel) and/or isolate it with a deny-all
NetworkPolicy, keeping it running for debugging."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kubernaut.actions.base import Action, ActionContext, ActionParams, ActionResult, VerificationFailed
from kubernaut.actions.registry import register
from kubernaut.kube.names import NamespaceName, ObjectName
from kubernaut.policy import Target

QUARANTINED = "kubernaut.io/quarantined"
QUARANTINE_ID = "kubernaut.io/quarantine-id"  # the pod's uid: selects exactly this pod


class QuarantinePodParams(ActionParams):
    namespace: NamespaceName
    pod: ObjectName
    mode: Literal["labels", "network_policy", "both"] = "both"
    drop_labels: list[str] | None = Field(
        default=None, description="Labels to remove (default: those the Services selecting it use)"
    )


def selecting_services(
    ctx: ActionContext, namespace: str, labels: dict[str, str]
) -> dict[str, dict[str, str]]:
    from kubernaut.kube.clients import core
    from kubernaut.kube.errors import api_errors

    with api_errors(f"services in {namespace}"):
        services = core(ctx).list_namespaced_service(namespace).items
    result = {}
    for svc in services:
        selector = svc.spec.selector or {}
        if selector and all(labels.get(k) == v for k, v in selector.items()):
            result[svc.metadata.name] = dict(selector)
    return result


def policy_name(pod: str) -> str:
    return f"kubernaut-quarantine-{pod}"[:253].rstrip("-.")


@register
class QuarantinePod(Action[QuarantinePodParams]):
    kind = "kubernetes"
    name = "quarantine_pod"
    Params = QuarantinePodParams
    mutating = True
    summary = "Remove a pod from its Services and/or isolate it with a deny-all NetworkPolicy; keep it."
    changes = (
        "pod labels (selector labels dropped, `kubernaut.io/quarantined=true`); a deny-all NetworkPolicy"
    )
    undo_doc = "restores the pod's labels and deletes the NetworkPolicy"
    dry_run_doc = "`dryRun=All` patch and create"

    def targets(self, ctx: ActionContext, params: QuarantinePodParams) -> list[Target]:
        return [Target("Pod", params.namespace, params.pod)]

    def run(self, ctx: ActionContext, params: QuarantinePodParams) -> ActionResult:
        from kubernaut.kube.clients import MERGE_PATCH, dry
        from kubernaut.kube.errors import retry_on_conflict
        from kubernaut.kube.objects import patch_object, read_object

        def relabel() -> dict[str, Any]:
            pod = read_object(ctx.api_client, "Pod", params.namespace, params.pod)
            labels: dict[str, str] = pod["metadata"].get("labels") or {}
            prior = ctx.prior_undo
            if prior is not None and labels.get(QUARANTINED) == "true":
                return prior  # an interrupted attempt relabelled it already
            services = selecting_services(ctx, params.namespace, labels)
            drop: list[str] = []
            if params.mode != "network_policy":
                drop = (
                    params.drop_labels
                    if params.drop_labels is not None
                    else sorted({k for selector in services.values() for k in selector})
                )
            changes: dict[str, str | None] = {k: None for k in drop if k in labels}
            changes.update({QUARANTINED: "true", QUARANTINE_ID: pod["metadata"]["uid"]})
            undo = ctx.remember_prior(
                {
                    "uid": pod["metadata"]["uid"],
                    "labels": {k: labels.get(k) for k in changes},
                    "services": sorted(services),
                    "policy": policy_name(params.pod) if params.mode != "labels" else None,
                }
            )
            patch = {"metadata": {"resourceVersion": pod["metadata"]["resourceVersion"], "labels": changes}}
            patch_object(ctx.api_client, "Pod", params.namespace, params.pod, patch, MERGE_PATCH, dry(ctx))
            return undo

        undo = retry_on_conflict(relabel)
        if undo["policy"]:
            self._create_policy(ctx, params, undo)
        output = {
            "pod": params.pod,
            "services": undo["services"],
            "policy": undo["policy"],
            "dry_run": ctx.dry_run,
        }
        return ActionResult(output=output, undo=undo, changed=not ctx.dry_run)

    @staticmethod
    def _create_policy(ctx: ActionContext, params: QuarantinePodParams, undo: dict[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        from kubernaut.kube.clients import dry, networking
        from kubernaut.kube.errors import api_errors

        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": undo["policy"],
                "namespace": params.namespace,
                "labels": {QUARANTINED: "true"},
            },
            # No ingress or egress rules with both policy types: all traffic is denied.
            "spec": {
                "podSelector": {"matchLabels": {QUARANTINE_ID: undo["uid"]}},
                "policyTypes": ["Ingress", "Egress"],
            },
        }
        try:
            networking(ctx).create_namespaced_network_policy(params.namespace, body, **dry(ctx))
        except ApiException as exc:
            if exc.status != 409:  # already there from an earlier attempt
                with api_errors(f"networkpolicy {params.namespace}/{undo['policy']}"):
                    raise

    def verify(self, ctx: ActionContext, params: QuarantinePodParams, result: ActionResult) -> None:
        from kubernaut.kube.objects import find_object, read_object

        pod = read_object(ctx.api_client, "Pod", params.namespace, params.pod)
        labels = pod["metadata"].get("labels") or {}
        still = selecting_services(ctx, params.namespace, labels) if params.mode != "network_policy" else {}
        if labels.get(QUARANTINED) != "true" or still:
            raise VerificationFailed(
                f"pod {params.namespace}/{params.pod} is still selected by {sorted(still)}"
            )
        policy = result.output["policy"]
        if policy and find_object(ctx.api_client, "NetworkPolicy", params.namespace, policy) is None:
            raise VerificationFailed(f"networkpolicy {params.namespace}/{policy} is missing")

    def undo(self, ctx: ActionContext, params: QuarantinePodParams, record: dict[str, Any]) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        from kubernaut.kube.clients import MERGE_PATCH, dry, networking
        from kubernaut.kube.errors import api_errors, retry_on_conflict
        from kubernaut.kube.objects import find_object, patch_object

        result: dict[str, Any] = {"labels": False, "policy": False}

        def restore_labels() -> None:
            pod = find_object(ctx.api_client, "Pod", params.namespace, params.pod)
            if pod is None or pod["metadata"]["uid"] != record["uid"]:
                return  # the quarantined pod is gone: nothing to give back
            labels = pod["metadata"].get("labels") or {}
            changes = {k: v for k, v in record["labels"].items() if labels.get(k) != v}
            if changes:
                patch = {
                    "metadata": {"resourceVersion": pod["metadata"]["resourceVersion"], "labels": changes}
                }
                patch_object(
                    ctx.api_client, "Pod", params.namespace, params.pod, patch, MERGE_PATCH, dry(ctx)
                )
                result["labels"] = True

        retry_on_conflict(restore_labels)
        if record.get("policy"):
            try:
                networking(ctx).delete_namespaced_network_policy(
                    record["policy"], params.namespace, **dry(ctx)
                )
                result["policy"] = True
            except ApiException as exc:
                if exc.status != 404:
                    with api_errors(f"networkpolicy {params.namespace}/{record['policy']}"):
                        raise
        return {"restored": result["labels"] or result["policy"], **result}


__all__ = ["QuarantinePod"]
