"""Template parameters the installation gives, not the alert.

Some alerts name no object: kubernetes-mixin's KubeCPUOvercommit is ``sum by (cluster)``, so
nothing in its labels says which node group to grow. The configuration says it, per template
and, in multi-cluster mode, per cluster::

    template_parameters:                     # every run of the template gets these
      cluster-capacity: {namespace: capi, machine_deployment: workers}
    cluster_parameters:                      # over template_parameters, for one cluster's alerts
      eks-prod:
        cluster-capacity: {machine_deployment: eks-prod-workers}

A run's parameters are, lowest first: the template's defaults, these, the run conf's
``params`` (a person triggering by hand). The intake renders a template's ``target:`` with
the same values, so the decision names the object the run will change; a required parameter
nobody set is decided ``no_target`` with the setting to add, never launched to fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernaut.config import KubernautConfig


@dataclass(frozen=True)
class TemplateParameters:
    """The configured parameters; empty: every template runs with its defaults."""

    by_template: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    by_cluster: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: KubernautConfig) -> TemplateParameters:
        return cls(config.template_parameters, config.cluster_parameters)

    def configured(self, template: str, cluster: str = "") -> dict[str, Any]:
        """What the configuration sets for ``template``'s runs on ``cluster`` ("": single-cluster)."""
        values = dict(self.by_template.get(template) or {})
        if cluster:
            values.update((self.by_cluster.get(cluster) or {}).get(template) or {})
        return values

    def for_run(self, template: str, cluster: str, conf_params: Any) -> dict[str, Any]:
        """A run's parameter overrides: the configured ones, then the conf's ``params``."""
        values = self.configured(template, cluster)
        if isinstance(conf_params, Mapping):
            values.update(conf_params)
        elif conf_params is not None:
            raise ValueError(
                f"conf.params: expected a mapping of parameters, got {type(conf_params).__name__}"
            )
        return values

    @staticmethod
    def where(template: str, cluster: str = "") -> str:
        """The setting that gives ``template`` a parameter (for error messages)."""
        if cluster:
            return f"cluster_parameters.{cluster}.{template} (or template_parameters.{template})"
        return f"template_parameters.{template}"
