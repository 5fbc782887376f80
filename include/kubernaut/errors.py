"""The base of every layer's own errors: a failure a person can act on, the message says which.

Each layer raises its own subclasses (``kubernaut.kube.errors.KubeError``,
``kubernaut.policy.PolicyViolation``, ``kubernaut.actions.base.ActionError``); nothing here
knows any layer, so the lowest ones (kube, waits) can raise without importing the actions.
"""

from __future__ import annotations


class KubernautError(Exception):
    """A failure whose message is meant for people as it is (no exception type needed)."""


__all__ = ["KubernautError"]
