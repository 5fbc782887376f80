"""Remediation actions: the contract (``base``) and the lookup (``registry``)."""

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionError,
    ActionParams,
    ActionResult,
    NotRestorable,
    PreconditionFailed,
    VerificationFailed,
    sensitive,
)
from kubernaut.actions.registry import ActionRegistry, UnknownAction, register, registry

__all__ = [
    "Action",
    "ActionContext",
    "ActionError",
    "ActionParams",
    "ActionRegistry",
    "ActionResult",
    "NotRestorable",
    "PreconditionFailed",
    "UnknownAction",
    "VerificationFailed",
    "register",
    "registry",
    "sensitive",
]
