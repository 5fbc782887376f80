"""Parameters an action declares ``sensitive()``: never in clear outside the task's memory.

For one step, :class:`StepSecrets` holds the rendered values of those parameters and

- registers them (and their base64, the form Kubernetes Secrets carry) with Airflow's
  secrets masker, so task logs show ``***`` wherever they appear;
- gives the redacted parameters (``***`` leaves, same shape) for logs, XCom and history;
- seals the step's undo record with Airflow's Fernet key (``[core] fernet_key``) before it
  is journaled, together with the sensitive values themselves, so that the rollback can
  rebuild the exact parameters (:func:`reveal`) while the journal holds only ciphertext.

A step without sensitive parameters is left exactly as it was (nothing sealed).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernaut.actions.base import ActionParams

REDACTED = "***"
SEALED = "kubernaut_sealed"  # the only key of a sealed undo record: {"kubernaut_sealed": <Fernet token>}
# Scrubbing substrings of free text (errors, outputs) below this length would garble unrelated
# words; such values are still redacted wherever they are a whole parameter value.
MIN_SCRUB_LENGTH = 4


class SecretsUnprotected(RuntimeError):
    """Sensitive data cannot be encrypted or decrypted (no usable Fernet key)."""


def _fernet() -> Any:
    """Airflow's Fernet (task SDK), refusing the no-op one used when no key is configured."""
    from airflow.sdk.crypto import get_fernet

    try:
        fernet = get_fernet()
    except Exception as exc:  # an unset key reads as the literal '{FERNET_KEY}' in the task SDK
        raise SecretsUnprotected(
            f"Airflow's Fernet key ([core] fernet_key, AIRFLOW__CORE__FERNET_KEY) is unusable: {exc}"
        ) from exc
    if not getattr(fernet, "is_encrypted", False):
        raise SecretsUnprotected(
            "no Fernet key configured ([core] fernet_key, AIRFLOW__CORE__FERNET_KEY): "
            "refusing to keep sensitive undo data unencrypted"
        )
    return fernet


def encrypt(value: Any) -> str:
    """JSON-serialise and encrypt with Airflow's Fernet key."""
    token: bytes = _fernet().encrypt(json.dumps(value, default=str, sort_keys=True).encode())
    return token.decode()


def decrypt(token: str) -> Any:
    from cryptography.fernet import InvalidToken

    try:
        plain: bytes = _fernet().decrypt(token.encode())
    except InvalidToken as exc:
        raise SecretsUnprotected(
            "encrypted undo record does not open with the configured Fernet key(s); "
            "keep the old key in [core] fernet_key (comma-separated, new first) after a rotation"
        ) from exc
    return json.loads(plain)


def is_sealed(record: Any) -> bool:
    return isinstance(record, Mapping) and set(record) == {SEALED}


def redact_value(value: Any) -> Any:
    """The same shape with every leaf replaced: keys of a mapping stay visible (they name
    what changed, e.g. which Secret keys were rotated), values do not."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return REDACTED


def _leaves(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list | tuple):
        return [leaf for v in value for leaf in _leaves(v)]
    if hasattr(value, "get_secret_value"):  # pydantic SecretStr
        value = value.get_secret_value()
    return [str(value)] if str(value) else []


def _forms(leaf: str) -> list[str]:
    """A value as it may appear elsewhere: itself and its base64 (Kubernetes Secret data)."""
    return [leaf, base64.b64encode(leaf.encode()).decode()]


@dataclass(frozen=True)
class StepSecrets:
    """The sensitive parameter values of one step (empty when the action declares none)."""

    values: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, params_cls: type[ActionParams], rendered: Mapping[str, Any]) -> StepSecrets:
        """Pick the sensitive values out of the rendered parameters and register them with
        Airflow's secrets masker at once (before anything may log them)."""
        names = params_cls.sensitive_fields()
        secrets = cls({name: rendered[name] for name in sorted(names) if name in rendered})
        secrets.mask()
        return secrets

    def __bool__(self) -> bool:
        return bool(self.values)

    def forms(self) -> list[str]:
        """Every string that would reveal a value: each leaf and its base64, longest first."""
        found = {form for leaf in _leaves(self.values) for form in _forms(leaf)}
        return sorted(found, key=len, reverse=True)

    def mask(self) -> None:
        if not self.values:
            return
        from airflow.sdk.log import mask_secret

        for form in self.forms():
            mask_secret(form)

    def redact(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters to show (logs, XCom, history): sensitive values replaced."""
        return {k: redact_value(v) if k in self.values else v for k, v in parameters.items()}

    def scrub(self, value: Any) -> Any:
        """Free text (an error, an action's output) with any sensitive value cut out."""
        if not self.values:
            return value
        if isinstance(value, str):
            for form in self.forms():
                if len(form) >= MIN_SCRUB_LENGTH:
                    value = value.replace(form, REDACTED)
            return value
        if isinstance(value, Mapping):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def seal(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The undo record as journaled: encrypted, with the sensitive parameter values."""
        if not self.values:
            return dict(record)
        return {SEALED: encrypt({"state": dict(record), "params": self.values})}

    def open(self, record: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The undo record an earlier attempt journaled, as the action saved it."""
        return None if record is None else open_record(record)[0]

    def check_key(self) -> None:
        """Raise SecretsUnprotected now if the undo record could not be sealed later."""
        if self.values:
            _fernet()


def redact_registered(text: str) -> str:
    """Text (an error message) with every value registered with Airflow's secrets masker in
    this process replaced: what the task log would show of it."""
    from airflow.sdk._shared.secrets_masker import redact  # the masker airflow.sdk.log uses

    return str(redact(text))


def open_record(record: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A journaled undo record -> (the record the action saved, the sensitive values)."""
    if not is_sealed(record):
        return dict(record), {}
    content = decrypt(str(record[SEALED]))
    return dict(content["state"]), dict(content["params"])


def reveal(
    parameters: Mapping[str, Any], prior_state: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """For the rollback: a journal entry's (redacted) parameters and (sealed) prior state ->
    the parameters the step ran with and the prior state its action recorded."""
    state, hidden = open_record(prior_state)
    return {**parameters, **hidden}, state


__all__ = [
    "REDACTED",
    "SEALED",
    "SecretsUnprotected",
    "StepSecrets",
    "decrypt",
    "encrypt",
    "is_sealed",
    "open_record",
    "redact_registered",
    "redact_value",
    "reveal",
]
