"""kubernaut.secrets: redaction, masking and Fernet sealing of sensitive() parameters."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet

from kubernaut.actions.kubernetes.config import RotateSecretParams, UpdateConfigMapParams
from kubernaut.operators.runner import StepInputError, StepSpec, run_step
from kubernaut.secrets import (
    REDACTED,
    SEALED,
    SecretsUnprotected,
    StepSecrets,
    redact_registered,
    reveal,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def fernet_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from airflow.sdk.crypto import get_fernet

    key = Fernet.generate_key().decode()
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", key)
    get_fernet.cache_clear()
    yield key
    get_fernet.cache_clear()


def rendered(value: str) -> dict[str, object]:
    return {
        "namespace": "demo",
        "secret": "db",
        "data": {"password": value, "user": "app-user"},
        "consumers": [{"kind": "Deployment", "name": "api"}],
    }


def test_only_sensitive_parameters_are_redacted_keeping_their_shape() -> None:
    hidden = StepSecrets.of(RotateSecretParams, rendered("pw-" + secrets.token_hex(8)))
    assert set(hidden.values) == {"data"}
    assert hidden.redact(rendered("x")) == {
        "namespace": "demo",
        "secret": "db",
        "data": {"password": REDACTED, "user": REDACTED},
        "consumers": [{"kind": "Deployment", "name": "api"}],
    }
    plain = StepSecrets.of(UpdateConfigMapParams, {"namespace": "demo", "configmap": "c", "set": {"a": "b"}})
    assert not plain and plain.redact({"set": {"a": "b"}}) == {"set": {"a": "b"}}
    assert plain.seal({"data": {"a": "b"}}) == {"data": {"a": "b"}}  # nothing sealed, no key needed


def test_values_and_their_base64_are_registered_with_the_secrets_masker() -> None:
    value = "pw-" + secrets.token_hex(8)
    hidden = StepSecrets.of(RotateSecretParams, rendered(value))
    text = f"409 on patch {{'password': '{value}'}} data={b64(value)}"
    assert value not in redact_registered(text) and b64(value) not in redact_registered(text)
    scrubbed = hidden.scrub({"note": [f"was {value}", b64(value)], "n": 1})
    assert scrubbed == {"note": [f"was {REDACTED}", REDACTED], "n": 1}


def test_sealed_record_opens_to_the_record_and_the_real_parameters(fernet_key: str) -> None:
    value = "pw-" + secrets.token_hex(8)
    params = rendered(value)
    hidden = StepSecrets.of(RotateSecretParams, params)
    record = {"data": {"password": b64("old-password")}, "restarted": {"Deployment/api": None}}
    sealed = hidden.seal(record)
    assert set(sealed) == {SEALED}
    text = json.dumps(sealed)
    for form in (value, b64(value), "old-password", b64("old-password")):
        assert form not in text
    assert hidden.open(sealed) == record
    # The rollback rebuilds the parameters the step ran with from the redacted ones.
    full, state = reveal(hidden.redact(params), sealed)
    assert state == record and full == params
    assert RotateSecretParams.model_validate(full).data["password"].get_secret_value() == value


def test_a_sealed_record_needs_the_key_it_was_sealed_with(
    fernet_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.crypto import get_fernet

    hidden = StepSecrets.of(RotateSecretParams, rendered("pw-123456"))
    sealed = hidden.seal({"data": {}})
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    get_fernet.cache_clear()
    with pytest.raises(SecretsUnprotected, match="does not open with the configured Fernet key"):
        hidden.open(sealed)
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", f"{Fernet.generate_key().decode()},{fernet_key}")
    get_fernet.cache_clear()
    assert hidden.open(sealed) == {"data": {}}  # the old key listed after a rotation
    monkeypatch.delenv("AIRFLOW__CORE__FERNET_KEY")
    get_fernet.cache_clear()
    with pytest.raises(SecretsUnprotected, match=r"Fernet key.*AIRFLOW__CORE__FERNET_KEY"):
        hidden.seal({"data": {}})


def test_invalid_sensitive_parameter_error_does_not_echo_the_value() -> None:
    value = "pw-" + secrets.token_hex(8)
    spec = StepSpec(
        template="t",
        name="rotate",
        action_type="kubernetes",
        action_name="rotate_secret",
        parameters={"namespace": "demo", "secret": "db", "data": value},  # not a mapping
    )
    with pytest.raises(StepInputError, match=r"parameters\.data: Input should be a valid dictionary") as err:
        run_step(spec, conf={}, params={}, steps={}, timeout=5, logger=logging.getLogger())
    assert value not in str(err.value) and f"(got {REDACTED})" in str(err.value)
