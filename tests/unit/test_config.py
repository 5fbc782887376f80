"""Configuration: validated when loaded, errors name the source and the field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubernaut.cli import main
from kubernaut.config import ConfigError, load_config, parse_config


def test_defaults_protect_the_system_namespaces() -> None:
    config = parse_config({}, "defaults")
    assert config.policy.protected_namespaces == ["kube-system", "kube-public", "kube-node-lease"]
    assert config.history_conn_id == "kubernaut_history"


def test_errors_name_the_source_and_field() -> None:
    with pytest.raises(ConfigError, match=r"ops.yaml: .*policy.max_replicas: Input should be greater"):
        parse_config({"policy": {"max_replicas": -1}}, "ops.yaml")
    with pytest.raises(ConfigError, match=r"policy.max_replicaz: Extra inputs are not permitted"):
        parse_config({"policy": {"max_replicaz": 3}}, "ops.yaml")


def test_file_from_env_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "kubernaut.yaml"
    path.write_text("policy: {require_label: kubernaut.io/managed=true}\nscripts: {flush: [/bin/true]}\n")
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(path))
    config = load_config()
    assert config.policy.require_label == "kubernaut.io/managed=true"
    assert config.scripts == {"flush": ["/bin/true"]}


def test_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("policy: {max_replicas: 7}\n")
    bad.write_text("policy: {max_replicas: many}\n")
    assert main(["config", str(good)]) == 0
    assert "max_replicas: 7" in capsys.readouterr().out
    assert main(["config", str(bad)]) == 1
    assert "bad.yaml: invalid kubernaut configuration: policy.max_replicas" in capsys.readouterr().err
    assert main(["config", str(tmp_path / "missing.yaml")]) == 2


# -- fails closed: configuration that exists but cannot be read or parsed is an error ------

VARIABLE_ENV = "AIRFLOW_VAR_KUBERNAUT_CONFIG"


@pytest.fixture
def outside_airflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process like the CLI: no task supervisor, not an Airflow server (importing the
    api-server sets _AIRFLOW_PROCESS_CONTEXT=server for the whole test process)."""
    monkeypatch.delenv("_AIRFLOW_PROCESS_CONTEXT", raising=False)
    monkeypatch.delenv("KUBERNAUT_CONFIG", raising=False)
    monkeypatch.delenv(VARIABLE_ENV, raising=False)


def test_no_configuration_at_all_gives_the_defaults(outside_airflow: None) -> None:
    assert load_config() == parse_config({}, "defaults")


def test_config_file_that_cannot_be_read_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "missing.yaml"
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(missing))
    with pytest.raises(ConfigError, match=rf"^KUBERNAUT_CONFIG={missing}: cannot read .*No such file"):
        load_config()
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(tmp_path))
    with pytest.raises(ConfigError, match=rf"^KUBERNAUT_CONFIG={tmp_path}: cannot read .*Is a directory"):
        load_config()
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"policy: \xff\xfe\n")
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(binary))
    with pytest.raises(ConfigError, match=rf"^KUBERNAUT_CONFIG={binary}: cannot read .*utf-8"):
        load_config()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("policy: {require_label: a=b\n", r"not valid YAML/JSON: expected ',' or '}'.* at line 2, column 1"),
        (
            "- policy\n- scripts\n",
            "invalid kubernaut configuration: expected a mapping of settings, got list",
        ),
        ("policy: {max_replicaz: 3}\n", "invalid kubernaut configuration: policy.max_replicaz: Extra inputs"),
    ],
)
def test_config_file_that_cannot_be_parsed_is_an_error(
    text: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kubernaut.yaml"
    path.write_text(text)
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(path))
    with pytest.raises(ConfigError, match=rf"^{path}: {problem}"):
        load_config()


def test_variable_is_read_and_validated(outside_airflow: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE_ENV, '{"policy": {"require_label": "kubernaut.io/managed=true"}}')
    assert load_config().policy.require_label == "kubernaut.io/managed=true"
    source = r"^Airflow Variable kubernaut_config \(from EnvironmentVariablesBackend\)"
    monkeypatch.setenv(VARIABLE_ENV, "policy: {require_label: kubernaut.io/managed=true")
    with pytest.raises(ConfigError, match=rf"{source}: not valid YAML/JSON: expected ','"):
        load_config()
    monkeypatch.setenv(VARIABLE_ENV, "policy: {require_labels: kubernaut.io/managed=true}")
    with pytest.raises(ConfigError, match=rf"{source}: invalid .*policy.require_labels: Extra inputs"):
        load_config()


@pytest.fixture
def file_secrets_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Airflow's own LocalFilesystemBackend as the configured secrets backend, reading
    Variables from a file the test writes (a store that may be unreadable, like Vault down)."""
    from airflow.sdk.configuration import clear_secrets_backends_cache

    variables = tmp_path / "variables.json"
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", "airflow.secrets.local_filesystem.LocalFilesystemBackend")
    monkeypatch.setenv(
        "AIRFLOW__SECRETS__BACKEND_KWARGS", json.dumps({"variables_file_path": str(variables)})
    )
    clear_secrets_backends_cache()
    yield variables
    clear_secrets_backends_cache()  # the backends are memoised per process once a custom one exists


def test_unreadable_variable_store_is_an_error_not_the_defaults(
    outside_airflow: None, file_secrets_backend: Path
) -> None:
    file_secrets_backend.write_text(json.dumps({"kubernaut_config": "policy: {max_replicas: 3}"}))
    assert load_config().policy.max_replicas == 3
    file_secrets_backend.write_text('{"kubernaut_config": ')  # the store itself is broken
    with pytest.raises(
        ConfigError,
        match=r"^Airflow Variable kubernaut_config: cannot be read from LocalFilesystemBackend: "
        r"AirflowFileParseException: Failed to load the secret file",
    ):
        load_config()
    from airflow.sdk import Variable

    # What the fail-open code relied on: Airflow logs the broken store and answers "no Variable".
    assert Variable.get("kubernaut_config", default=None) is None


def test_unreachable_metadata_db_is_an_error_not_the_defaults(tmp_path: Path) -> None:
    """In the api-server (the intake plugin) the Variable comes from the metadata DB; a DB that
    cannot be reached is an error. A process of its own: Airflow binds its DB at import."""
    env = {k: v for k, v in os.environ.items() if k not in ("KUBERNAUT_CONFIG", VARIABLE_ENV)} | {
        "_AIRFLOW_PROCESS_CONTEXT": "server",
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://postgres@127.0.0.1:5432/kubernaut_no_such_db",
    }
    code = (
        "from kubernaut.config import ConfigError, load_config\ntry:\n    print(load_config())\n"
        "except ConfigError as exc:\n    print('ConfigError:', exc)\n"
    )
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    expected = "ConfigError: Airflow Variable kubernaut_config: cannot be read from MetastoreBackend: "
    assert child.stdout.startswith(expected + "OperationalError"), child.stdout
    assert 'database "kubernaut_no_such_db" does not exist' in child.stdout
