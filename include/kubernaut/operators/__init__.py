"""Airflow operators for the three action kinds, over one shared step runner."""

from kubernaut.operators.step import (
    CustomActionOperator,
    KubernautStepOperator,
    KubernetesActionOperator,
    MonitoringActionOperator,
    operator_for,
)

__all__ = [
    "CustomActionOperator",
    "KubernautStepOperator",
    "KubernetesActionOperator",
    "MonitoringActionOperator",
    "operator_for",
]
