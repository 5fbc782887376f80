"""Airflow notifiers (``BaseNotifier``) kubernaut ships, and escalation through them."""

from kubernaut.notifiers.webhook import KubernautWebhookNotifier

__all__ = ["KubernautWebhookNotifier"]
