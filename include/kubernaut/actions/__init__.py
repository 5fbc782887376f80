"""Remediation actions: the contract (``base``) and the lookup (``registry``)."""

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionError,
    ActionParams,
    ActionResult,
    PreconditionFailed,
    VerificationFailed,
)
from kubernaut.actions.registry import ActionRegistry, UnknownAction, register, registry

__all__ = [
    "Action",
    "ActionContext",
    "ActionError",
    "ActionParams",
    "ActionRegistry",
    "ActionResult",
    "PreconditionFailed",
    "UnknownAction",
    "VerificationFailed",
    "register",
    "registry",
]
