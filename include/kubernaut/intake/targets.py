"""The object a template acts on when the alert's labels name none.

Cluster-wide aggregations (``sum by (cluster)``: KubeCPUOvercommit) and control-plane alerts
(KubeAPIDown) keep no object label. A template answering them declares ``target:``; the
intake renders it with the alert and the run's parameters (defaults, then the
configuration's, see ``kubernaut.template_params``), so the decision names the object the
run will change (the MachineDeployment a node group is), or the cluster a diagnose-only
template reports on. Whatever goes wrong is a clear ``no_target`` reason naming the setting
to add, never a crash and never a launch that cannot act.
"""

from __future__ import annotations

from typing import Any

from kubernaut.alert import CLUSTER_SCOPED, NO_TARGET, Target, alert_context
from kubernaut.intake.payload import Alert
from kubernaut.rendering import RenderError, render_value
from kubernaut.template_params import TemplateParameters
from kubernaut.templates import Template
from kubernaut.templates.model import ParameterError


class TargetUnresolved(ValueError):
    """The template's ``target:`` cannot name an object for this alert (the reason says why)."""


def template_target(
    template: Template, alert: Alert, parameters: TemplateParameters, cluster: str = ""
) -> Target:
    """``template.target`` rendered for ``alert``; NO_TARGET when the template declares none."""
    spec = template.target
    if spec is None:
        return NO_TARGET
    configured = parameters.configured(template.name, cluster)
    missing = [n for n, p in template.parameters.items() if p.required and n not in configured]
    if missing:
        raise TargetUnresolved(
            f"{template.name} acts on the {spec.kind} its parameter {', '.join(map(repr, missing))} names, "
            f"which this alert cannot give and the kubernaut configuration does not set: set "
            f"{parameters.where(template.name, cluster)}: {{{', '.join(f'{n}: ...' for n in missing)}}}"
        )
    try:
        params = template.resolve_params(configured)
    except ParameterError as exc:
        raise TargetUnresolved(
            f"{template.name}: the configured parameters ({parameters.where(template.name, cluster)}) "
            f"are invalid: {exc}"
        ) from None
    context: dict[str, Any] = {"alert": alert_context(alert.to_conf()), "params": params}
    try:
        name = str(render_value(spec.name, context)).strip()
        namespace = "" if spec.kind in CLUSTER_SCOPED else str(render_value(spec.namespace, context)).strip()
    except RenderError as exc:
        raise TargetUnresolved(
            f"{template.name}: its target cannot be rendered for this alert: {exc}"
        ) from None
    if not name:
        raise TargetUnresolved(f"{template.name}: its target renders to an empty {spec.kind} name")
    return Target(spec.kind, namespace, name)
